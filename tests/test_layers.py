"""The layers, each a package (kdpipe/<layer>/), top to bottom: cli -> pipeline, init -> stages ->
report -> run -> tasks -> blocks (training, models, runtime, quantization, data, evaluation, bundle,
config) -> base (the modules at kdpipe/'s top: errors, io, labels, metrics, ...). A module imports
only from its own layer or below, in-function imports included, with no exception, and no modules
import each other in a circle (which only an import inside a function lets run). docs/how-it-works.md
lists the same layers."""

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # runs no pipeline

PACKAGE = Path(__file__).resolve().parents[1] / "kdpipe"
LAYERS = {"cli": 7, "__main__": 7, "pipeline": 6, "init": 6, "stages": 5, "report": 4, "run": 3, "tasks": 2,
          **dict.fromkeys(["training", "models", "runtime", "quantization", "data", "evaluation", "bundle",
                           "config"], 1)}


def modules() -> dict[str, str]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = f.read_text()
    return out


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0  # the rest of kdpipe/*.py is the base


def imports(source: str, known: set[str]) -> set[str]:
    """The kdpipe modules a source imports (`from kdpipe import x` is module kdpipe.x where that exists)."""
    def resolve(name):
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {resolve(a.name) for a in node.names if a.name.startswith("kdpipe")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kdpipe"):
            out |= {resolve(f"{node.module}.{a.name}") for a in node.names}
    return out - {""}


def upward(mods: dict[str, str]) -> list[str]:
    known = set(mods)
    return sorted(f"{m} (layer {layer(m)}) imports {i} (layer {layer(i)})" for m, src in mods.items()
                  for i in imports(src, known) if layer(i) > layer(m))


def cycles(mods: dict[str, str]) -> list[list[str]]:
    known = set(mods)
    graph = {m: imports(src, known) - {m} for m, src in mods.items()}
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_from_a_higher_layer():
    assert upward(modules()) == []


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(modules()) == []


@pytest.mark.parametrize("module, source", [
    ("kdpipe.training.loop", "from kdpipe.tasks.base import Task\n"),  # a block reaching up to tasks
    ("kdpipe.io", "def f():\n    from kdpipe.run import store\n"),  # base -> run, inside a function
    ("kdpipe.report.build", "from kdpipe.stages import quantize\n"),  # report -> stages: once allowed
    ("kdpipe.config.schema", "from kdpipe.tasks import get_task\n"),  # config sits below the tasks
    ("kdpipe.tasks.classification", "import kdpipe.stages.prune\n"),
])
def test_an_upward_import_is_caught(module, source):
    mods = modules()
    mods[module] = source
    assert any(line.startswith(module) for line in upward(mods))


def test_a_circle_is_caught():
    mods = modules()
    mods["kdpipe.labels"] = "from kdpipe.metrics import Metric\n"  # metrics imports labels
    assert ["kdpipe.labels", "kdpipe.metrics"] in cycles(mods)


def documented_layers(text: str) -> dict[str, int]:
    """The layers docs/how-it-works.md lists, numbered top to bottom, as LAYERS numbers them (bottom 0):
    the bold names of each item, and for the blocks the packages it lists after the colon."""
    items = re.findall(r"^(\d+)\. (.+?)(?=^\d+\. |^\s*$)", text[text.index("## Layout"):], re.M | re.S)
    out = {}
    for number, body in items:
        level = len(items) - int(number)
        names = re.findall(r"\*\*(\w+)\*\*", body)
        if names == ["blocks"]:
            names = [n.strip() for n in body.split(":", 1)[1].replace("\n", " ").rstrip(" ;.").split(",")]
        for name in names:
            out[name] = level
    if "cli" in out:
        out["__main__"] = out["cli"]
    out.pop("base", None)
    return out


def test_the_docs_list_the_same_layers():
    docs = (PACKAGE.parent / "docs" / "how-it-works.md").read_text()
    assert documented_layers(docs) == LAYERS


def test_a_layer_the_docs_misplace_is_caught():
    docs = (PACKAGE.parent / "docs" / "how-it-works.md").read_text()
    swapped = docs.replace("4. **report**", "4. **run**", 1).replace("5. **run**", "5. **report**", 1)
    assert documented_layers(swapped) != LAYERS

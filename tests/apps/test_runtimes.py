"""Bundles beyond Python: every variant the pipeline can ship (fp32, fused fp32, int8 dynamic, int8
dynamic from the fused graph, int8 static, fp16, and the quantized teacher), of an image CNN and of
two text encoders (a classifier and an embedder), runs in Node.js (onnxruntime-node, through
apps/node/classify.mjs) and in headless Chromium (onnxruntime-web on WebAssembly, through the page
apps/web/), with the top-1 predictions of Python's onnxruntime and outputs within TOLERANCE.
kdpipe.json's "runtimes" claims are checked here, and so is every operator they count as verified.

They skip, saying why, where node, apps/node_modules (apps/setup.sh) or chromium is missing."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, write_config

APPS = Path(__file__).parents[2] / "apps"
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")
HAVE_MODULES = (APPS / "node_modules" / "onnxruntime-node").is_dir()
needs_node = pytest.mark.skipif(not (NODE and HAVE_MODULES),
                                reason="needs node and apps/node_modules: run apps/setup.sh")
needs_chromium = pytest.mark.skipif(not (NODE and HAVE_MODULES and CHROMIUM),
                                    reason="needs node, apps/node_modules and chromium: run apps/setup.sh")

# Largest |output difference| from Python's onnxruntime, by the variant's precision. fp32 differs only
# in summation order; int8 in how the float scales round; fp16 kernels differ most between builds.
TOLERANCE = {"fp32": 1e-4, "int8": 2e-3, "fp16": 2e-2}
TEXTS = ["The while statement repeats a block.", "str.upper() returns a copy in upper case.",
         "A very long sentence about generators, iterators, coroutines, asynchronous comprehensions, "
         "context managers and decorators that is longer than the maximum sequence length of the model.",
         "print"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An image classifier with a CNN student and two tiny text encoders, every variant made."""
    if not (NODE and HAVE_MODULES):
        pytest.skip("needs node and apps/node_modules: run apps/setup.sh")
    from tests.tasks.test_text_tasks import text_config

    every = {"quantize.variants": ["dynamic", "static", "fp16"], "quantize.calibration": ["minmax"],
             "benchmark.providers": ["cpu"], "benchmark.batch_sizes": [1]}
    out = {}
    folder = tmp_path_factory.mktemp("image")
    cfg = write_config(folder, {**every, "student.model": "builtin:cnn",
                                "student.params": {"channels": [4], "hidden": 32, "dropout": 0.0}})
    assert run_cli("all", str(cfg), "-q") == 0
    out["image"] = folder / "run"
    for task in ("classification", "embedding"):
        folder = tmp_path_factory.mktemp(task)
        assert (
            run_cli("all", str(text_config(folder, task, **every, **{"benchmark.sequence_lengths": None})), "-q") == 0
        )
        out[task] = folder / "run"
    return out


def _variants(run: Path, into: Path) -> list[Path]:
    """A bundle folder per variant: the run's bundle files with that variant's model.onnx."""
    folders = []
    for model in sorted([*(run / "export").glob("*.onnx"), *(run / "quantize").glob("*.onnx")]):
        folder = into / f"{run.parent.name}-{model.stem}"
        shutil.copytree(run / "export" / "bundle", folder)
        shutil.copyfile(model, folder / "model.onnx")
        folders.append(folder)
    return folders


def _inputs(run: Path) -> dict:
    info = json.loads((run / "export" / "bundle" / "kdpipe.json").read_text())
    if "tokenizer" in info:
        return {"texts": TEXTS}
    from sklearn.datasets import load_digits

    return {"inputs": load_digits().images[-16:].reshape(16, 1, 8, 8).tolist()}  # raw pixels 0..16


def _python_outputs(folder: Path, inputs: dict) -> np.ndarray:
    from kdpipe.bundle.folder import load_bundle, text_outputs
    from kdpipe.data.splits import apply_preprocessing

    sess, info = load_bundle(folder)
    if "texts" in inputs:
        return text_outputs(folder, sess, info, inputs["texts"])
    x = apply_preprocessing(np.asarray(inputs["inputs"], np.float32), info["preprocessing"])
    return sess.run(None, {info["input"]["name"]: x})[0]


def _precision(name: str) -> str:
    return "fp16" if "fp16" in name else "int8" if "int8" in name else "fp32"


def _check(folder: Path, got: np.ndarray, want: np.ndarray, runtime: str, ops_seen: dict) -> float:
    from kdpipe.runtime.compat import op_types, runtimes

    tol = TOLERANCE[_precision(folder.name)]
    assert got.shape == want.shape, folder.name
    diff = float(np.abs(got - want).max())
    assert diff <= tol, f"{folder.name} in {runtime}: max |difference| {diff:.2e} > {tol}"
    if "labels" in json.loads((folder / "kdpipe.json").read_text()):
        top2 = np.sort(want, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * tol  # near-ties may flip within the tolerance
        assert (got.argmax(1) == want.argmax(1))[clear].all(), f"{folder.name} in {runtime}: top-1 differs"
    claim = runtimes(folder / "model.onnx")[runtime]
    assert claim["runs"], f"{folder.name} ran in {runtime}, but kdpipe.json does not say so: add " \
                          f"{claim.get('not_verified_ops')} to kdpipe/runtime/compat.py VERIFIED_OPS"
    ops_seen[runtime] |= op_types(folder / "model.onnx")
    return diff


def _outputs(rows: list[dict]) -> np.ndarray:
    """The apps' results (logits of a classifier, or an embedding) as one array."""
    return np.array([row.get("embedding") or row["logits"] for row in rows], np.float32)


def _node_outputs(folder: Path, inputs_file: Path) -> np.ndarray:
    r = subprocess.run([NODE, str(APPS / "node" / "classify.mjs"), str(folder), str(inputs_file), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return _outputs([json.loads(line) for line in r.stdout.splitlines()])


def _site(tmp_path: Path) -> Path:
    """A folder to serve: apps/ (the page and its libraries) plus the bundles the test puts there."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "apps").symlink_to(APPS)
    return root


def _browser(root: Path, *args: str) -> list[dict]:
    """apps/web/browser.mjs: the page in headless Chromium, one result per bundle."""
    r = subprocess.run([NODE, str(APPS / "web" / "browser.mjs"), "--root", str(root), *args], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "CHROMIUM": CHROMIUM})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _verified_ops_were_all_run(runtime: str, ops_seen: dict, worst: dict) -> None:
    from kdpipe.runtime.compat import ENCODER_OPS

    by_precision = {p: max(d for n, d in worst.items() if _precision(n) == p) for p in TOLERANCE}
    print(f"\n{runtime}: {len(worst)} variants, largest |difference| from Python by precision: {by_precision}")

    unmeasured = ENCODER_OPS - ops_seen[runtime]
    assert not unmeasured, f"compat.ENCODER_OPS lists operators no test ran in {runtime}: {sorted(unmeasured)}"


@needs_node
def test_every_variant_runs_in_node_like_python(runs, tmp_path):
    ops_seen, worst = {"onnxruntime-node": set()}, {}
    for run in runs.values():
        inputs_file = tmp_path / f"{run.parent.name}-inputs.json"
        inputs_file.write_text(json.dumps(_inputs(run)))
        for folder in _variants(run, tmp_path):
            want = _python_outputs(folder, _inputs(run))
            worst[folder.name] = _check(folder, _node_outputs(folder, inputs_file), want, "onnxruntime-node", ops_seen)
    assert len(worst) >= 20
    _verified_ops_were_all_run("onnxruntime-node", ops_seen, worst)


@needs_chromium
def test_every_variant_runs_in_chromium_like_python(runs, tmp_path):
    """The page, served over HTTP, loads each bundle and runs the same inputs through window.kdpipe."""
    root = _site(tmp_path)
    ops_seen, worst = {"onnxruntime-web": set()}, {}
    for run in runs.values():
        inputs = _inputs(run)
        inputs_file = tmp_path / f"{run.parent.name}-inputs.json"
        inputs_file.write_text(json.dumps(inputs))
        folders = _variants(run, root)
        pages = _browser(root, *[a for f in folders for a in ("--bundle", f"/{f.name}")], "--inputs", str(inputs_file))
        for folder, page in zip(folders, pages):
            assert page["info"] and not page["errors"], (folder.name, page["errors"])
            got = _outputs(page["predictions"]["results"])
            worst[folder.name] = _check(folder, got, _python_outputs(folder, inputs), "onnxruntime-web", ops_seen)
    assert len(worst) >= 20
    _verified_ops_were_all_run("onnxruntime-web", ops_seen, worst)


@needs_chromium
def test_a_person_draws_a_digit_and_sees_a_prediction(runs, tmp_path):
    root = _site(tmp_path)
    (root / "bundle").symlink_to(runs["image"] / "export" / "bundle")
    shot = tmp_path / "page.png"
    page = _browser(root, "--bundle", "/bundle", "--draw", "--screenshot", str(shot))[0]
    assert not page["errors"] and page["drawn"] in page["info"]["labels"]
    assert shot.stat().st_size > 10_000


@needs_node
def test_node_program_refuses_bad_input_clearly(runs, tmp_path):
    bundle = runs["image"] / "export" / "bundle"
    (tmp_path / "bad.json").write_text('{"texts": ["a"]}')
    r = subprocess.run([NODE, str(APPS / "node" / "classify.mjs"), str(bundle), str(tmp_path / "bad.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'expected {"inputs": [...]}' in r.stderr
    r = subprocess.run([NODE, str(APPS / "node" / "classify.mjs"), str(tmp_path), str(tmp_path / "bad.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot load the bundle" in r.stderr


def test_every_bundle_has_a_model_card_and_says_where_it_runs(tiny_run):
    bundle = tiny_run / "export" / "bundle"
    info = json.loads((bundle / "kdpipe.json").read_text())
    assert {"onnxruntime", "onnxruntime-node", "onnxruntime-web"} <= set(info["runtimes"])
    card = (bundle / "README.md").read_text()
    front = card.split("---")[1]
    import yaml

    meta = yaml.safe_load(front)
    assert meta["library_name"] == "onnx" and "kdpipe" in meta["tags"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == pytest.approx(
        info["metric"]["test"], abs=1e-3
    )
    # beside the bundle: the quantized teacher, unless the bundle is the quantized teacher itself
    versus = ("This bundle is the teacher itself, quantized" if info["variant"] == "teacher-int8-dynamic"
              else "teacher quantized (dynamic int8, no distillation)")
    for text in ("## How it was made", versus, "teacher (ONNX fp32)",
                 "the same student trained without KD", "## Intended use and limits", "SIMD"):
        assert text in card

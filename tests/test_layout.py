"""docs/how-it-works.md's Layout names every module of the package: by file name, or, for the stages, by name."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # runs no pipeline

ROOT = Path(__file__).resolve().parents[1]


def layout() -> str:
    text = (ROOT / "docs" / "how-it-works.md").read_text()
    section = text[text.index("## Layout"):]
    start = section.index("```")
    return section[start:section.index("```", start + 3)]


def missing(block: str) -> list[str]:
    out = []
    for f in sorted((ROOT / "kdpipe").rglob("*.py")):
        if f.name == "__init__.py":
            continue
        stage = f.parent.name == "stages" and re.search(rf"\b{f.stem}\b", block)
        if not stage and not re.search(rf"(?<!\w){re.escape(f.name)}", block):
            out.append(str(f.relative_to(ROOT)))
    return out


def test_the_readme_layout_names_every_module():
    assert missing(layout()) == []


def test_a_module_missing_from_the_layout_is_caught():
    assert missing(layout().replace("memo.py", "")) == ["kdpipe/memo.py"]


DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def broken_links(files) -> list[str]:
    out = []
    for f in files:
        name = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f.name
        for target in re.findall(r"\]\(([^)\s]+)\)", f.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (f.parent / path).resolve() if path else f
            if not dest.exists():
                out.append(f"{name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
                if anchor not in slugs:
                    out.append(f"{name}: {target} (no such heading)")
    return out


def test_every_relative_link_in_the_readme_and_docs_resolves():
    assert broken_links(DOCS) == []


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n[ok](#top) [gone](b.md) [bad](#nowhere)\n")
    assert [x.split(": ", 1)[1] for x in broken_links([tmp_path / "a.md"])] == ["b.md (no such file)",
                                                                                "#nowhere (no such heading)"]


def test_the_readme_is_what_a_newcomer_reads_in_five_minutes():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def undocumented_options(doc: str) -> list[str]:
    """`kdpipe COMMAND --option`s (and commands) that docs/commands.md does not name."""
    from kdpipe.cli import cli

    out = []
    for name, command in cli.commands.items():
        if f"kdpipe {name}" not in doc and f"`{name}`" not in doc:
            out.append(name)
        out += [f"{name} {o}" for p in command.params for o in p.opts if o.startswith("--") and o != "--help"
                and f"`{o}" not in doc and f"{o}`" not in doc and f"[{o}" not in doc and f"/{o}" not in doc]
    return out


def test_commands_md_names_every_command_and_option_of_the_help():
    assert undocumented_options((ROOT / "docs" / "commands.md").read_text()) == []


def test_an_option_missing_from_commands_md_is_caught():
    doc = (ROOT / "docs" / "commands.md").read_text().replace("--teacher-weights", "--the-weights")
    assert undocumented_options(doc) == ["init --teacher-weights"]

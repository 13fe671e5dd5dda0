"""README.md's Layout names every module of the package: by file name, or, for the stages, by name."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> str:
    text = (ROOT / "README.md").read_text()
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

"""Every figure README.md and docs/ quote is its results file's (benchmarks/results/<example>.json,
written from a run's report.json by benchmarks/figures.py): quoted figures and generated tables."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import figures  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

pytestmark = pytest.mark.fast  # runs no pipeline


def wrong_figures(docs) -> list[str]:
    out = []
    for doc in docs:
        text = doc.read_text()
        if text.count("<!-- fig ") != len(figures.quoted_figures(text)):  # a marker with no number before it
            out.append(f"{doc.name}: a '<!-- fig' marker that follows no number (so nothing is checked)")
        for written, example, path in figures.quoted_figures(text):
            try:
                actual = figures.value(example, path)
            except (KeyError, StopIteration, IndexError, FileNotFoundError) as e:
                out.append(f"{doc.name}: {written} <- {example} {path}: no such figure ({type(e).__name__})")
                continue
            if not figures.figure_matches(written, actual):
                out.append(f"{doc.name}: {written} is {actual} in benchmarks/results/{example}.json ({path})")
        out += [f"{doc.name}: the {kind} block of {example} is not its results file's (run figures.py update)"
                for example, kind, written, rendered in figures.blocks(text) if written != rendered]
    return out


def test_every_quoted_figure_and_block_is_its_results_files():
    assert figures.quoted_figures((ROOT / "README.md").read_text())  # the README quotes some
    assert wrong_figures(figures.DOCS) == []


def test_a_figure_that_differs_from_its_source_is_caught(tmp_path):
    doc = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    written, example, path = figures.quoted_figures(text)[0]
    doc.write_text(text.replace(f"{written}<!-- fig {example} {path} -->", f"99.99<!-- fig {example} {path} -->", 1)
                   .replace("| distill |", "| distil |", 1))
    found = wrong_figures([doc])
    assert any(f"99.99 is {figures.value(example, path)}" in f for f in found)
    assert any("stages block of default is not its results file's" in f for f in found)

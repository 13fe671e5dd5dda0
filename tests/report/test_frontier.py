"""kdpipe/report/frontier.py: the Pareto frontier of metric against cost."""

import json

from kdpipe.report.frontier import pareto
from kdpipe.variants import bundle_label


def test_pareto_keeps_what_nothing_beats_on_both():
    pts = [("big", 100, 97.4), ("mid", 30, 96.8), ("mid-worse", 40, 96.0), ("tiny", 10, 90.0), ("tie", 30, 96.8)]
    assert pareto(pts, higher_is_better=True) == ["tiny", "mid", "big"]
    # lower is better (perplexity): the cheapest is on it, then only what improves on it
    assert pareto([("a", 1, 150.0), ("b", 2, 160.0), ("c", 3, 120.0)], higher_is_better=False) == ["a", "c"]
    assert pareto([], True) == []


def test_report_marks_the_frontier_and_the_bundle(tiny_run):
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    onnx = {bundle_label(r): r for r in report["rows"] if r["format"].startswith("onnx")}
    for kind, cost in (("size", lambda r: r["size_bytes"]),
                       ("latency", lambda r: r["latency"]["cpu"]["1"]["p50_ms"])):
        front = report["frontier"][kind]
        assert front and set(front) <= set(onnx)
        for name, r in onnx.items():  # everything off the frontier is beaten on both by something on it
            if name not in front:
                assert any(cost(onnx[f]) <= cost(r) and onnx[f]["metric"]["value"] >= r["metric"]["value"]
                           for f in front), name
    md = (tiny_run / "report" / "report.md").read_text()
    assert "Pareto frontier" in md and (tiny_run / "report" / "accuracy_vs_size.png").is_file()

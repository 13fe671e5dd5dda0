"""report.json schema (as documented in the README) and the three renderings."""

import json

REQUIRED_ROW_KEYS = {"variant", "format", "params", "size_bytes", "size_reduction", "metric", "metric_drop_points", "latency"}


def test_report_json_schema(tiny_run):
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    assert report["schema_version"] == 1 and report["providers"] == ["cpu", "cuda"]
    for row in report["rows"]:
        assert REQUIRED_ROW_KEYS <= set(row)
        assert row["metric"]["name"] == "accuracy" and row["metric"]["split"] == "test"
        assert set(row["latency"]) == {"cpu", "cuda"}
    teacher = next(r for r in report["rows"] if r["variant"] == "teacher" and r["format"] == "torch")
    assert teacher["size_reduction"] == 1.0 and teacher["metric_drop_points"] == 0.0
    assert teacher["latency"]["cpu"]["runtime"] == "torch-eager"
    int8 = [r for r in report["rows"] if r["format"] == "onnx-int8"]
    assert int8 and all(r["latency"]["cpu"]["available"] and r["latency"]["cpu"]["1"]["p50_ms"] > 0 for r in int8)
    if not report["provider_status"]["cuda"]["available"]:
        assert all(not r["latency"]["cuda"]["available"] for r in report["rows"])
    assert "gain_points" in report["kd"] and report["kd"]["verdict"]
    assert set(report["stages"]) >= {"distill", "prune", "quantize", "export", "benchmark"}


def test_markdown_and_html_show_the_table_and_plots(tiny_run):
    md = (tiny_run / "report" / "report.md").read_text()
    assert "| variant | format |" in md and "not available" in md and "Knowledge distillation" in md
    html = (tiny_run / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html


def test_kd_verdict_says_when_the_baseline_already_matches_the_teacher():
    from kdpipe.pipeline.report import _kd_summary
    from kdpipe.tasks.base import ACCURACY

    def rows(teacher, baseline, student):
        return [{"variant": v, "format": "torch", "metric": {"test": m}}
                for v, m in (("teacher", teacher), ("baseline", baseline), ("student", student))]

    assert "already matches the teacher" in _kd_summary(rows(97.3, 97.3, 96.6), ACCURACY)["verdict"]
    assert "try another temperature" in _kd_summary(rows(97.3, 94.0, 93.5), ACCURACY)["verdict"]
    assert _kd_summary(rows(97.3, 93.8, 94.3), ACCURACY)["verdict"].startswith("KD helped")

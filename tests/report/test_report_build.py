"""report.json schema (as documented in the README) and the three renderings."""

import json

REQUIRED_ROW_KEYS = {
    "variant",
    "format",
    "params",
    "size_bytes",
    "size_reduction",
    "metric",
    "metric_drop_points",
    "latency",
}


def test_report_json_schema(tiny_run):
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    assert report["schema_version"] == 2 and report["providers"] == ["cpu", "cuda"]
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
    assert [s["stage"] for s in report["stages"]] == ["distill", "prune", "quantize", "export", "benchmark", "all"]
    # the tensors every runtime was timed on: arrays as they are, one per batch size
    assert {b: s[0] for b, s in report["benchmark_inputs"].items()} == {str(b): b for b in report["batch_sizes"]}
    assert report["benchmark_inputs_are_texts"] is False
    assert "tokens at batch" not in (tiny_run / "report" / "report.md").read_text()
    assert report["kd"]["precision"] == "fp32"  # the default; precision: auto/bf16 say bf16
    # every model timed side by side, in rounds (benchmark.rounds, 5 by default)
    assert (
        report["benchmark_rounds"] == 5
        and "timed side by side in 5 rounds" in (tiny_run / "report" / "report.md").read_text()
    )
    timed = [
        r for r in json.loads((tiny_run / "benchmark" / "latency.json").read_text())["results"] if r.get("batches")
    ]
    assert timed and all(m["rounds"] == 5 for r in timed for m in r["batches"].values())


def test_markdown_and_html_show_the_table_and_plots(tiny_run):
    md = (tiny_run / "report" / "report.md").read_text()
    assert "| variant | format |" in md and "not available" in md and "Knowledge distillation" in md
    html = (tiny_run / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html


def test_the_report_opens_with_the_stage_by_stage_table_and_its_figures_are_the_rows(tiny_run):
    """Each step against the one before it, read off the variant rows: sizes and factors, the metric's
    change (after - before) on validation and test, batch-1 CPU latency and the stage's own time."""
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    rows = {(r["variant"] if r["format"] != "onnx-fp32" else r["variant"] + "-fp32"): r
            for r in report["rows"] if r["format"] != "torch"}
    steps = {s["stage"]: s for s in report["stages"]}
    chain = [(n, steps[n]["step"]["from"], steps[n]["step"]["to"]) for n in ("distill", "prune", "quantize", "export")]
    assert chain[:2] == [("distill", "teacher-fp32", "student-fp32"), ("prune", "student-fp32", "pruned-fp32")]
    assert chain[2][1] == "pruned-fp32" and rows[chain[2][2]]["source"] == "pruned"  # a quantized copy of the pruned
    assert chain[3][1] == chain[2][2] and chain[3][2] == (
        report["bundle"]["variant"] if report["bundle"]["variant"] in rows else report["bundle"]["variant"] + "-fp32"
    )
    for name, before, after in chain:
        st, a, b = steps[name]["step"], rows[before], rows[after]
        assert st["size_bytes"] == [a["size_bytes"], b["size_bytes"]]
        assert st["size_factor"] == round(a["size_bytes"] / b["size_bytes"], 3)
        assert st["metric"]["test"] == [a["metric"]["value"], b["metric"]["value"],
                                        round(b["metric"]["value"] - a["metric"]["value"], 4)]
        assert st["metric"]["val"][2] == round(b["metric"]["val"] - a["metric"]["val"], 4)
        assert st["latency_ms"] == [a["latency"]["cpu"]["1"]["p50_ms"], b["latency"]["cpu"]["1"]["p50_ms"]]
        assert steps[name]["seconds"] > 0
    whole = steps["all"]["step"]
    assert (whole["from"], whole["to"]) == ("teacher-fp32", chain[3][2])
    assert steps["all"]["seconds"] == round(sum(s["seconds"] for s in report["stages"][:-1]), 1)
    # all four renderings open with it (the terminal table is the report command's output)
    md = (tiny_run / "report" / "report.md").read_text()
    assert md.index("## What each stage bought and cost") < md.index("## Variants")
    assert "| prune | student-fp32 → pruned-fp32 |" in md and "after − before; higher is better" in md
    html = (tiny_run / "report" / "report.html").read_text()
    assert html.index("What each stage bought and cost") < html.index("<h2>Variants")
    for section in ("Data splits", "Export parity", "Quantized graphs", "Stages", "Findings"):  # all that md holds
        assert f"## {section}" in md and f"<h2>{section}" in html
    assert "Quantization, each copy against its fp32 source on validation" in md


def test_kd_verdict_says_when_the_baseline_already_matches_the_teacher():
    from kdpipe.metrics import ACCURACY
    from kdpipe.report.build import _kd_summary

    def rows(teacher, baseline, student):
        return [{"variant": v, "format": "torch", "metric": {"test": m}}
                for v, m in (("teacher", teacher), ("baseline", baseline), ("student", student))]

    assert "already matches the teacher" in _kd_summary(rows(97.3, 97.3, 96.6), ACCURACY)["verdict"]
    assert "try another temperature" in _kd_summary(rows(97.3, 94.0, 93.5), ACCURACY)["verdict"]
    assert _kd_summary(rows(97.3, 93.8, 94.3), ACCURACY)["verdict"].startswith("KD helped")


def test_kd_helped_only_where_the_paired_interval_excludes_zero():
    """The same 2.3-point gain is "helped" on 1,000 test samples that show it, and "cannot be told
    apart" where it rests on 3 of 130 samples; validation is reported beside test."""
    import numpy as np

    from kdpipe.evaluation.evidence import Samples
    from kdpipe.metrics import ACCURACY
    from kdpipe.report.build import _kd_summary

    def samples(right):
        right = np.asarray(right, float)
        return Samples(right * 100, np.ones_like(right), right.astype(np.int64))

    def summary(n, student_wins, baseline_wins):
        both = np.ones(n)
        s, b = both.copy(), both.copy()
        b[:student_wins] = 0  # answers only the student got right
        s[n - baseline_wins:] = 0  # and only the baseline
        ev = {"student": {"val": samples(s), "test": samples(s)}, "baseline": {"val": samples(b), "test": samples(b)}}
        rows = [{"variant": v, "format": "torch", "metric": {"test": float(m)}}
                for v, m in (("teacher", 100.0), ("student", s.mean() * 100), ("baseline", b.mean() * 100))]
        return _kd_summary(rows, ACCURACY, evidence=lambda r: ev.get(r["variant"]))

    shown = summary(1000, 30, 7)
    assert shown["verdict"].startswith("KD helped: the student is 2.30 points better")
    assert shown["paired"]["test"]["ci"][0] > 0 and shown["paired"]["val"]["samples"] == 1000
    unclear = summary(130, 3, 0)
    assert unclear["verdict"].startswith("KD and no KD cannot be told apart on 130 test samples")
    assert unclear["paired"]["test"]["ci"][0] <= 0 < unclear["gain_points"]


def test_report_says_when_the_student_trained_in_bf16():
    from kdpipe.metrics import ACCURACY
    from kdpipe.report.build import _kd_summary, notes

    rows = [{"variant": v, "format": "torch", "metric": {"test": m}} for v, m in (("teacher", 97.0), ("student", 95.0))]
    for precision, said in (("bf16", True), ("fp32", False), (None, False)):
        kd = _kd_summary(rows, ACCURACY, precision=precision)
        assert kd["precision"] == (precision or "fp32")
        line = notes({"kd": kd, "metric": {"name": "accuracy", "unit": "%"}})[0]
        assert ("Trained in bf16 mixed precision" in line) is said


def test_report_says_how_many_labels_student_and_teacher_learnt_from(tmp_path):
    """data.label_fraction with teacher.labels: all: the splits table counts the unlabelled training
    inputs and the labels the teacher saw (every one), and the teacher's record says so too."""
    from tests.conftest import run_cli, write_config

    cfg = write_config(tmp_path, {"data.label_fraction": 0.5, "teacher.labels": "all", "prune.enabled": False,
                                  "quantize.enabled": False})
    assert run_cli("all", str(cfg), "-q") == 0
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    splits = report["splits"]
    labelled = sum(splits["per_class"]["train"].values())
    assert splits["per_class"]["train_unlabelled"] == splits["samples"]["train"] - labelled > 0
    assert splits["teacher_labels"] == splits["samples"]["train"]
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert f"| training labels the teacher learnt from (teacher.labels) | {splits['samples']['train']:,} |" in md


def test_a_bundle_chosen_on_a_split_too_small_to_resolve_max_drop_says_so():
    from kdpipe.report.build import small_validation_note

    def report(resolution, unit="%", rule="auto"):
        return {"metric": {"unit": unit},
                "bundle": {"choice": {"rule": rule, "max_drop": 1.0,
                                      **({"resolution": resolution} if resolution else {})}}}

    res = {"half_width": 2.4, "samples": 291, "samples_needed": 1677}
    note = small_validation_note(report(res))
    assert note.startswith("The bundle was chosen on 291 validation samples, which tell a variant from the teacher "
                           "to about ±2.40 points (paired 95% interval), coarser than export.max_drop (1)")
    assert "about 1,677 samples would resolve it" in note
    assert small_validation_note(report(None)) is None  # export found the split fine enough
    assert small_validation_note(report(res, rule="export.bundle")) is None  # the user named it
    assert "±2.40 (paired" in small_validation_note(report(res, unit=""))  # perplexity: no "points"


def test_the_quantized_teacher_line_names_what_each_wins():
    from kdpipe.report.build import versus_quantized_teacher

    def report(drop, size, ms):  # the bundle (student-fp32) against teacher-int8-dynamic: 90%, 100 KB, 2 ms
        rows = [{"variant": "student", "format": "onnx-fp32", "metric_drop_points": drop, "size_bytes": size,
                 "metric": {"value": 90.0 - drop}, "latency": {"cpu": {"1": {"p50_ms": ms}}}},
                {"variant": "teacher-int8-dynamic", "format": "onnx-int8", "metric_drop_points": 0.0,
                 "size_bytes": 100_000, "metric": {"value": 90.0}, "latency": {"cpu": {"1": {"p50_ms": 2.0}}}}]
        return {"rows": rows, "bundle": {"variant": "student-fp32"}, "batch_sizes": [1, 8],
                "metric": {"name": "accuracy", "unit": "%", "higher_is_better": True}}

    assert "as good or better on every count" in versus_quantized_teacher(report(-1.0, 50_000, 1.0))
    line = versus_quantized_teacher(report(-4.1, 137_000, 0.7))  # more accurate and faster, but larger
    assert "wins on accuracy and speed and loses on size" in line and "1.4x larger" in line
    assert "2.9x faster at batch 1" in line and "where size matters more" in line
    line = versus_quantized_teacher(report(3.0, 50_000, 1.0))  # smaller and faster, less accurate
    assert "wins on size and speed and loses on accuracy" in line
    line = versus_quantized_teacher(report(3.0, 200_000, 4.0))
    assert line.startswith("The bundle does not beat") and "2.0x slower at batch 1" in line
    assert "better choice here" in line


def test_the_table_shows_each_rows_intervals_and_marks_the_bundle(tiny_run):
    from kdpipe.report.build import table_columns

    report = json.loads((tiny_run / "report" / "report.json").read_text())
    head, body = table_columns(report)
    val, test = head.index("val acc % (95%)"), head.index("test acc % (95%)")
    for r, line in zip(report["rows"], body):
        lo, hi = r["metric"]["ci"]
        assert lo <= r["metric"]["value"] <= hi
        assert line[test] == f"{r['metric']['value']:.2f} ±{(hi - lo) / 2:.2f}"
        vlo, vhi = r["metric"]["val_ci"]
        assert line[val] == f"{r['metric']['val']:.2f} ±{(vhi - vlo) / 2:.2f}"
    marked = [line[0] for line in body if line[0].endswith(" (bundle)")]
    assert len(marked) == 1 and marked[0].startswith(report["bundle"]["variant"].removesuffix("-fp32"))
    quantized = [line for r, line in zip(report["rows"], body) if "vs_source" in r]
    kept = head.index("kept of fp32 source % (val)")
    assert quantized and all(0 < float(line[kept]) <= 100 for line in quantized)


def test_docs_report_md_names_every_key_report_json_has(tiny_run):
    """docs/report.md's schema against a run's report.json: every top-level key, and those of kd, int8,
    bundle.choice and a row."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "report.md").read_text()
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    keys = [*report, *report["kd"], *(report.get("int8") or {}), *report["bundle"]["choice"],
            *{k for row in report["rows"] for k in row}]
    assert [k for k in keys if f'"{k}"' not in doc] == []

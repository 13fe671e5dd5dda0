"""export.bundle: auto: the fastest variant within max_drop of the teacher, the quantized teacher
included; the most accurate when none is within; a named variant as named."""

import pytest

from kdpipe.errors import ConfigError
from kdpipe.pipeline.config import ExportConfig
from kdpipe.stages.export import choose_bundle
from kdpipe.tasks.base import ACCURACY, PERPLEXITY


def row(variant, fmt, val, size, source=None):
    return {"variant": variant, "format": fmt, "metric": {"val": val, "test": val}, "size_bytes": size,
            **({"source": source} if source else {})}


ROWS = [row("teacher", "onnx-fp32", 97.0, 1000, "teacher"), row("baseline", "onnx-fp32", 96.9, 100, "baseline"),
        row("student", "onnx-fp32", 96.5, 100, "student"), row("student-int8-dynamic", "onnx-int8", 96.4, 30, "student"),
        row("student-int8-static-minmax", "onnx-int8", 90.0, 30, "student"),
        row("teacher-int8-dynamic", "onnx-int8", 97.0, 260, "teacher")]
LATENCY = {"teacher-fp32": 1.0, "baseline-fp32": 0.05, "student-fp32": 0.10, "student-int8-dynamic": 0.06,
           "student-int8-static-minmax": 0.01, "teacher-int8-dynamic": 0.4}


def test_auto_ships_the_fastest_variant_within_max_drop_of_the_teacher():
    chosen, choice = choose_bundle(ExportConfig(max_drop=1.0), ROWS, ACCURACY, LATENCY)
    # static min-max is the fastest but 7 points down; the no-KD baseline is not a candidate
    assert chosen["variant"] == "student-int8-dynamic"
    within = {c["variant"]: c["within"] for c in choice["candidates"]}
    assert within == {"student-fp32": True, "student-int8-dynamic": True, "student-int8-static-minmax": False,
                      "teacher-int8-dynamic": True}
    assert "fastest at batch 1 of the 3 variants within 1 point of" in choice["reason"]


def test_the_quantized_teacher_is_shipped_when_no_student_is_within_budget_and_says_so():
    chosen, choice = choose_bundle(ExportConfig(max_drop=0.3), ROWS, ACCURACY, LATENCY)
    assert chosen["variant"] == "teacher-int8-dynamic"
    assert "teacher quantized without distillation" in choice["reason"]


def test_none_within_budget_ships_the_most_accurate():
    rows = [r for r in ROWS if r["variant"] != "teacher-int8-dynamic"]
    chosen, choice = choose_bundle(ExportConfig(max_drop=0.1), rows, ACCURACY, LATENCY)
    assert chosen["variant"] == "student" and "no variant is within 0.1 points" in choice["reason"]


def test_near_ties_in_speed_go_to_the_smaller_file():
    latency = {**LATENCY, "student-fp32": 0.061}  # within 5% of student-int8-dynamic's 0.06 ms
    rows = [r if r["variant"] != "student-int8-dynamic" else {**r, "size_bytes": 300} for r in ROWS]
    chosen, choice = choose_bundle(ExportConfig(max_drop=1.0), rows, ACCURACY, latency)
    assert chosen["variant"] == "student" and "smallest of the 2 within 5%" in choice["reason"]


def test_lower_is_better_metrics_count_the_drop_the_right_way():
    rows = [row("teacher", "onnx-fp32", 80.0, 1000, "teacher"), row("student", "onnx-fp32", 85.0, 100, "student"),
            row("student-int8-dynamic", "onnx-int8", 95.0, 30, "student")]
    latency = {"teacher-fp32": 1.0, "student-fp32": 0.2, "student-int8-dynamic": 0.1}
    chosen, _ = choose_bundle(ExportConfig(max_drop=10.0), rows, PERPLEXITY, latency)
    assert chosen["variant"] == "student"  # perplexity 95 is 15 worse than the teacher's 80


def test_a_named_bundle_is_shipped_as_named_or_refused():
    chosen, choice = choose_bundle(ExportConfig(bundle="student-int8-static-minmax"), ROWS, ACCURACY, LATENCY)
    assert chosen["variant"] == "student-int8-static-minmax" and choice["rule"] == "export.bundle"
    assert choose_bundle(ExportConfig(bundle="student"), ROWS, ACCURACY, LATENCY)[0]["format"] == "onnx-fp32"
    with pytest.raises(ConfigError, match="not made in this run"):
        choose_bundle(ExportConfig(bundle="pruned"), ROWS, ACCURACY, LATENCY)

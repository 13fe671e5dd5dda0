"""kdpipe.report.plots: a variant looks the same in every chart (colour = its model, marker = format)."""

import pytest

from kdpipe.report.plots import COLOURS, style

pytestmark = pytest.mark.fast  # runs no pipeline


def row(variant, fmt, source=None):
    return {"variant": variant, "format": fmt, **({"source": source} if source else {})}


def test_a_variants_style_is_its_model_and_format():
    assert style(row("teacher", "torch")) == (COLOURS["teacher"], "torch")
    assert style(row("teacher", "onnx-fp32")) == (COLOURS["teacher"], "fp32")
    assert style(row("teacher-int8-dynamic", "onnx-int8", "teacher")) == (COLOURS["teacher"], "dynamic")
    assert style(row("pruned-int8-static-minmax", "onnx-int8", "pruned")) == (COLOURS["pruned"], "static")
    assert style(row("student-int8-dynamic-mixed", "onnx-int8", "student")) == (COLOURS["student"], "mixed")
    assert style(row("student-fp32-fused", "onnx-fp32", "student")) == (COLOURS["student"], "fused")
    assert style(row("pruned-fp16", "onnx-fp16", "pruned")) == (COLOURS["pruned"], "fp16")
    assert style(row("baseline", "onnx-fp32")) == (COLOURS["baseline"], "fp32")

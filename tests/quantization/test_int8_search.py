"""Accuracy-aware int8 (kdpipe.quantization.int8_search) on a small graph with one node that int8 breaks."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kdpipe.evaluation.scoring import onnx_predictor
from kdpipe.quantization.int8_search import quantizable_nodes, search
from kdpipe.runtime.sessions import make_session

pytestmark = pytest.mark.fast  # runs no pipeline


def three_matmuls(path: Path) -> Path:
    """x -> A -> B -> C -> y; B's weights are tiny values next to one outlier, so per-tensor int8
    rounds the tiny ones to zero and the output collapses; A and C quantize well."""

    rng = np.random.default_rng(0)
    a, c = rng.normal(size=(16, 16)).astype(np.float32), rng.normal(size=(16, 4)).astype(np.float32)
    b = rng.normal(scale=0.01, size=(16, 16)).astype(np.float32)
    b[0, 0] = 50.0
    a[:, 0] = 0.0  # the outlier multiplies a zero input: y depends on B's tiny weights only, and no
    # activation carries the outlier (dynamic int8 quantizes the activations too)
    nodes = [helper.make_node("MatMul", ["x", "A"], ["h1"], name="A_node"),
             helper.make_node("MatMul", ["h1", "B"], ["h2"], name="B_node"),
             helper.make_node("MatMul", ["h2", "C"], ["y"], name="C_node")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
                              [numpy_helper.from_array(w, n) for w, n in ((a, "A"), (b, "B"), (c, "C"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def quantize(src):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def make(out, exclude):
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, nodes_to_exclude=exclude)

    return make


def test_the_node_int8_breaks_is_found_and_kept_in_float(tmp_path):
    fp32 = three_matmuls(tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(200, 16)).astype(np.float32)
    reference = onnx_predictor(make_session(fp32, "cpu")[0])(x)

    def error(path):  # the "metric": relative output error on validation inputs (lower is better)
        out = onnx_predictor(make_session(path, "cpu")[0])(x)
        return float(np.abs(out - reference).mean() / np.abs(reference).mean() * 100)

    nodes = quantizable_nodes(fp32, ["MatMul"])
    assert nodes == ["A_node", "B_node", "C_node"]
    everything = tmp_path / "all.onnx"
    quantize(fp32)(everything, [])
    assert error(everything) > 20  # int8 everywhere breaks the model
    res = search(fp32, quantize(fp32), nodes, None, x, error, lambda v: v < 5, reduce_range=False)  # as quantize()
    assert max(res.sensitivity, key=res.sensitivity.get) == "B_node"
    assert res.kept_float == ["B_node"] and res.val < 5 and res.nodes == 3 and res.ranking == "exact"
    assert res.tried[0] == {"kept_float": 1, "val": res.val}


def test_no_mix_within_budget_is_reported_as_none(tmp_path):
    fp32 = three_matmuls(tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(50, 16)).astype(np.float32)
    res = search(fp32, quantize(fp32), ["A_node", "B_node", "C_node"], None, x, lambda p: 1.0, lambda v: False)
    assert res.val is None and res.kept_float == [] and [t["kept_float"] for t in res.tried] == [1, 2]


def test_the_time_budget_ends_the_search(tmp_path):
    fp32 = three_matmuls(tmp_path / "m.onnx")
    x = np.random.default_rng(1).normal(size=(50, 16)).astype(np.float32)
    res = search(fp32, quantize(fp32), ["A_node", "B_node", "C_node"], None, x, lambda p: 1.0, lambda v: False,
                 minutes=1e-9)
    assert res.out_of_time and res.tried == [] and res.val is None
    # too little time to quantize and run the model once per node: ranked in one run, the same node first
    assert res.ranking == "one run" and max(res.sensitivity, key=res.sensitivity.get) == "B_node"

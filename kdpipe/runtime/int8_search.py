"""Accuracy-aware int8: when quantizing every eligible node costs more than the budget, find the
nodes whose quantization hurts most and keep them in float until the model is within budget.

A node's sensitivity is how far the model's outputs move when only that node is quantized: the
mean squared difference from the fp32 outputs, relative to their variance, on validation inputs
(a continuous measure, so a few dozen inputs rank the nodes). The most sensitive nodes are then
kept in float in growing numbers (1, 2, 4, ..., then a bisection) until the task metric on the
whole validation split is within budget. onnxruntime's `nodes_to_exclude` does the keeping.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from kdpipe.evaluation import onnx_predictor
from kdpipe.runtime.sessions import make_session

# What onnxruntime's quantizers can quantize (its default op registries, the ops that carry weights)
QUANTIZABLE = {"Conv", "MatMul", "Gemm", "Gather", "Attention", "EmbedLayerNormalization"}
SENSITIVITY_SAMPLES = 64


@dataclass
class SearchResult:
    kept_float: list[str]  # node names left in fp32, most sensitive first
    val: float | None  # the metric on validation with them kept (None: no mix was within budget)
    sensitivity: dict[str, float]  # node -> relative output error when only it is quantized
    tried: list[dict] = field(default_factory=list)  # [{kept_float: k, val: v}] in the order tried
    nodes: int = 0


def quantizable_nodes(path: Path, op_types: list[str] | None) -> list[str]:
    """Named nodes the quantizer may touch (unnamed ones cannot be excluded by name); a Gather only
    where it reads a weight table (the others gather shapes and stay as they are)."""
    wanted = set(op_types) if op_types else QUANTIZABLE
    graph = onnx.load(str(path)).graph
    weights = {t.name for t in graph.initializer}
    return [n.name for n in graph.node if n.op_type in wanted and n.name
            and (n.op_type != "Gather" or n.input[0] in weights)]


def exclusion_names(nodes: list[str]) -> list[str]:
    """The names to pass as nodes_to_exclude: onnxruntime's quantizer rewrites a Gemm into a MatMul
    named `<gemm>_MatMul` (plus an Add) before it quantizes, so both names are given."""
    return nodes + [f"{n}_MatMul" for n in nodes]


def _outputs(path: Path, feeds, x: np.ndarray, batch: int = 16) -> np.ndarray:
    sess, _ = make_session(path, "cpu")
    predict = onnx_predictor(sess, feeds)
    return np.concatenate([predict(x[i:i + batch]) for i in range(0, len(x), batch)])


def search(fp32: Path, quantize: Callable[[Path, list[str]], None], nodes: list[str], feeds, x_val: np.ndarray,
           val_metric: Callable[[Path], float], within: Callable[[float], bool]) -> SearchResult:
    """`quantize(out, exclude)` writes the int8 model with `exclude` left in float; `val_metric(path)`
    scores a model on the validation split; `within(v)` says whether v is within budget."""
    x = x_val[:SENSITIVITY_SAMPLES]
    reference = _outputs(fp32, feeds, x)
    scale = float(reference.var()) or 1.0
    sensitivity = {}
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.onnx"
        for node in nodes:
            quantize(probe, [n for n in nodes if n != node])  # only `node` quantized
            sensitivity[node] = float(((_outputs(probe, feeds, x) - reference) ** 2).mean() / scale)
        order = sorted(nodes, key=lambda n: -sensitivity[n])
        result = SearchResult([], None, sensitivity, nodes=len(nodes))

        def attempt(k: int) -> bool:
            quantize(probe, order[:k])
            v = val_metric(probe)
            result.tried.append({"kept_float": k, "val": v})
            if within(v) and (result.val is None or k < len(result.kept_float)):
                result.kept_float, result.val = order[:k], v
            return within(v)

        k, lo = 1, 0  # lo: a count known not to be enough
        while k < len(nodes) and not attempt(k):
            lo, k = k, min(2 * k, len(nodes) - 1) if k < len(nodes) - 1 else len(nodes)
        if result.val is not None:
            hi = len(result.kept_float)
            while hi - lo > 1:  # the fewest float nodes that still fit the budget
                mid = (lo + hi) // 2
                if attempt(mid):
                    hi = mid
                else:
                    lo = mid
    return result

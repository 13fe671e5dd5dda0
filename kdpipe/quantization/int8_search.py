"""Accuracy-aware int8: when quantizing every eligible node costs more than the budget, find the
nodes whose quantization hurts most and keep them in float until the model is within budget.

A node's sensitivity is how far the model's outputs move when only that node is quantized: the mean
squared difference from the fp32 outputs, relative to their variance, on validation inputs (a
continuous measure, so a few dozen inputs rank the nodes). That costs one quantization and one run of
the whole model per node: seconds for a small model, most of an hour for a 135M-parameter LM. So where
the first node's measurement says all of them would take more than a third of the time budget, the
nodes are ranked in one run instead: the fp32 model runs once with every quantizable node's input
kept, and each node's output is recomputed as int8 computes it (its input rounded to uint8 over the
tensor's range, its weights to int8 as the quantizer rounds them); nodes whose weight is not a plain
matrix (fused Attention, convolutions, embedding tables) by their weights' own rounding error. That
ranking sees each node alone, not what its error does downstream (an embedding table added to a
larger one before a LayerNorm ranks too high): benchmarks/int8_search_rank.py compares the two.

The most sensitive nodes are then kept in float in growing numbers (1, 2, 4, ..., then a bisection),
each mix scored on the whole validation split, until the model is within budget or the time budget
(`minutes`) is spent. onnxruntime's `nodes_to_exclude` does the keeping.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from onnx import numpy_helper

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
    seconds: float = 0.0
    out_of_time: bool = False  # the time budget ended the search before it was done
    ranking: str = "exact"  # or "one run" (module doc)


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
    names = [i.name for i in sess.get_inputs()]
    out = [sess.run(None, feeds(names, x[i:i + batch]) if feeds else {names[0]: x[i:i + batch]})[0]
           for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float32)


def exact_sensitivity(fp32: Path, quantize, nodes: list[str], feeds, x: np.ndarray,
                      budget_s: float | None) -> dict[str, float] | None:
    """node -> relative output error with only that node in int8; None as soon as the first node's
    measurement says all of them would take more than `budget_s`."""
    reference = _outputs(fp32, feeds, x)
    scale = float(reference.var()) or 1.0
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.onnx"
        for i, node in enumerate(nodes):
            t0 = time.perf_counter()
            quantize(probe, [n for n in nodes if n != node])  # only `node` quantized
            out[node] = float(((_outputs(probe, feeds, x) - reference) ** 2).mean() / scale)
            if i == 0 and budget_s is not None and (time.perf_counter() - t0) * len(nodes) > budget_s:
                return None
    return out


def _fake_uint8(x: np.ndarray) -> np.ndarray:
    """An input as DynamicQuantizeLinear rounds it (training.fake_quant's emulation, checked against it)."""
    from kdpipe.training.fake_quant import uint8_dynamic

    return uint8_dynamic(torch.from_numpy(x)).numpy()


def _fake_int8(w: np.ndarray, per_channel: bool, reduce_range: bool) -> np.ndarray:
    """Weights as onnxruntime's quantizer rounds them, channels along axis 0 (training.fake_quant's)."""
    from kdpipe.training.fake_quant import int8_symmetric

    return int8_symmetric(torch.from_numpy(np.ascontiguousarray(w)), per_channel, reduce_range).numpy()


def local_sensitivity(fp32: Path, nodes: list[str], feeds, x: np.ndarray, per_channel: bool, reduce_range: bool,
                      batch: int = 16) -> dict[str, float]:
    """node -> relative squared error of its own output when it alone computes in int8 (module doc)."""
    import onnx.helper

    model = onnx.load(str(fp32))
    weights = {t.name: t for t in model.graph.initializer}
    matrices, weight_only = {}, {}
    for n in model.graph.node:
        if n.name not in nodes:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in weights \
                and not attrs.get("transA", 0):
            w = numpy_helper.to_array(weights[n.input[1]]).astype(np.float32)
            matrices[n.name] = (n.input[0], w.T if attrs.get("transB", 0) else w)
        else:  # rounding error of its constant weights; an activation-only node has none
            ws = [numpy_helper.to_array(weights[i]).astype(np.float32) for i in n.input if i in weights]
            ws = [w for w in ws if w.ndim >= 2]
            weight_only[n.name] = max((float(((_fake_int8(w, per_channel, reduce_range) - w) ** 2).sum()
                                             / max(float((w ** 2).sum()), 1e-30)) for w in ws), default=0.0)
    names = sorted({a for a, _ in matrices.values()})
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(a) for a in names if a not in known)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "inputs.onnx"
        onnx.save(model, str(probe), save_as_external_data=model.ByteSize() > 1_800_000_000)
        sess, _ = make_session(probe, "cpu")
        outs = [o.name for o in sess.get_outputs()]
        in_names = [i.name for i in sess.get_inputs()]
        err = {k: 0.0 for k in matrices}
        ref = {k: 0.0 for k in matrices}
        # a MatMul's weight is [in, out]: its channels are the columns
        qw = {k: _fake_int8(w.T, per_channel, reduce_range).T for k, (_, w) in matrices.items()}
        for i in range(0, len(x), batch):
            got = dict(zip(outs, sess.run(None, feeds(in_names, x[i:i + batch]) if feeds else
                                          {in_names[0]: x[i:i + batch]})))
            for k, (a, w) in matrices.items():
                act = got[a].reshape(-1, w.shape[0]).astype(np.float32)
                exact = act @ w
                err[k] += float(((_fake_uint8(act) @ qw[k] - exact) ** 2).sum())
                ref[k] += float((exact ** 2).sum())
    return {**{k: err[k] / max(ref[k], 1e-30) for k in matrices}, **weight_only}


def search(fp32: Path, quantize: Callable[[Path, list[str]], None], nodes: list[str], feeds, x_val: np.ndarray,
           val_metric: Callable[[Path], float], within: Callable[[float], bool], *, per_channel: bool = False,
           reduce_range: bool = True, minutes: float | None = None) -> SearchResult:
    """`quantize(out, exclude)` writes the int8 model with `exclude` left in float; `val_metric(path)`
    scores a model on the validation split; `within(v)` says whether v is within budget; the weights'
    rounding (`per_channel`, `reduce_range`) is the quantizer's. Stops trying mixes once `minutes` are spent."""
    t0 = time.perf_counter()
    x = x_val[:SENSITIVITY_SAMPLES]
    sensitivity = exact_sensitivity(fp32, quantize, nodes, feeds, x, minutes * 20 if minutes else None)
    ranking = "exact"
    if sensitivity is None:  # too slow for this model: one run ranks them all
        sensitivity, ranking = local_sensitivity(fp32, nodes, feeds, x, per_channel, reduce_range), "one run"
    order = sorted(nodes, key=lambda n: -sensitivity[n])
    result = SearchResult([], None, sensitivity, nodes=len(nodes), ranking=ranking)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.onnx"

        def attempt(k: int) -> bool:
            quantize(probe, order[:k])
            v = val_metric(probe)
            result.tried.append({"kept_float": k, "val": v})
            if within(v) and (result.val is None or k < len(result.kept_float)):
                result.kept_float, result.val = order[:k], v
            return within(v)

        def out_of_time() -> bool:
            result.out_of_time = minutes is not None and time.perf_counter() - t0 > minutes * 60
            return result.out_of_time

        k, lo = 1, 0  # lo: a count known not to be enough
        while k < len(nodes) and not out_of_time() and not attempt(k):
            lo, k = k, min(2 * k, len(nodes) - 1) if k < len(nodes) - 1 else len(nodes)
        if result.val is not None:
            hi = len(result.kept_float)
            while hi - lo > 1 and not out_of_time():  # the fewest float nodes that still fit the budget
                mid = (lo + hi) // 2
                if attempt(mid):
                    hi = mid
                else:
                    lo = mid
    result.seconds = round(time.perf_counter() - t0, 2)
    return result

"""onnxruntime's quantizers behind one small settings object: dynamic and static (QDQ) int8, fp16, and
the helpers around them (equal calibration batches, op counts). What the quantize stage makes with
them, and which variant it keeps, is the stage's business; how a graph is quantized is this module's."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx


@dataclass(frozen=True)
class Int8:
    """How a graph is quantized to int8: weights per channel (else per tensor), 7-bit weights (which no
    CPU's int8 kernels can saturate; 8-bit are more precise on VNNI CPUs), the op types to quantize
    (None: every type the quantizer supports) and nodes kept in float."""

    per_channel: bool = False
    reduce_range: bool = True
    op_types: list[str] | None = None
    exclude: list[str] | None = None
    # dynamic only: MatMuls between two activations too (attention's Q.K and weights.V), as optimum's
    # dynamic configs do; onnxruntime's default quantizes only MatMuls with a constant weight
    activation_matmuls: bool = False


@contextlib.contextmanager
def quiet_root_logger():
    """onnxruntime's quantizer logs every tensor it cannot type to the root logger; what was
    quantized is recorded (op counts per variant) instead."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def calibration_batches(x: np.ndarray, samples: int, seed: int, batch: int = 32) -> list[np.ndarray]:
    """Equal batches of training inputs: the percentile and entropy calibrators stack every batch's
    activations into one array, so a ragged last batch breaks them. Up to batch-1 samples are left
    out for that (all of them fit in one batch when there are fewer than `batch`)."""
    n = min(samples, len(x))
    batch = min(batch, n)
    idx = np.random.default_rng(seed + 5).permutation(len(x))[: n - n % batch]
    return [x[idx[i : i + batch]] for i in range(0, len(idx), batch)]


# Fused graphs hold contrib ops (com.microsoft) whose outputs shape inference cannot type: they are fp32.
_EXTRA = {"DefaultTensorType": onnx.TensorProto.FLOAT}


def dynamic_int8(src: Path, out: Path, s: Int8) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(out), per_channel=s.per_channel, reduce_range=s.reduce_range,
                     weight_type=QuantType.QInt8, op_types_to_quantize=s.op_types, nodes_to_exclude=s.exclude,
                     extra_options={**_EXTRA, "MatMulConstBOnly": not s.activation_matmuls})


def static_int8(src: Path, out: Path, s: Int8, calibration: str, batches: list[dict]) -> None:
    """QDQ int8 calibrated on `batches` (onnxruntime feeds) with minmax, entropy or percentile."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    # uint8 activations with int8 weights: the combination x86 int8 kernels (VNNI and AVX2 alike) run.
    # The calibrators print their progress to stdout; kdpipe's stdout is for results.
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=s.per_channel,
                        reduce_range=s.reduce_range, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=methods[calibration],
                        op_types_to_quantize=s.op_types, nodes_to_exclude=s.exclude, extra_options=_EXTRA)


def to_fp16(src: Path, out: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # fp32 inputs and outputs: an app feeds the same arrays to the fp16 model as to the fp32 one.
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _topological_sort(model.graph)  # the converter appends the input Casts last; the ONNX spec wants order
    onnx.save(model, str(out))


def _topological_sort(graph) -> None:
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progress_made = False
        for node in list(pending):
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
                pending.remove(node)
                progress_made = True
        if not progress_made:
            raise ValueError("fp16 graph has a cycle or a dangling input")
    del graph.node[:]
    graph.node.extend(ordered)


def op_counts(path: Path) -> dict:
    return dict(Counter(n.op_type for n in onnx.load(str(path)).graph.node))


@dataclass(frozen=True)
class Int4:
    """Weight-only int4 (onnxruntime's MatMulNBits): weights in blocks of `block_size` along the input
    axis, each block with its own scale; `accuracy_level` is the precision the CPU kernel computes in
    (4: int8, the fastest on x86; 0: fp32, dequantizing each block)."""

    block_size: int = 32
    accuracy_level: int = 4
    symmetric: bool = True
    embeddings: bool = True  # token (and position) embedding tables too, in blocks along their width


def int4_weight_only(src: Path, out: Path, s: Int4) -> int:
    """Every MatMul with a constant weight matrix in int4 (Gemm, as exporters write linear layers, is
    first rewritten as MatMul + Add, which MatMulNBits takes), and with `embeddings` every Gather from
    a constant table (GatherBlockQuantized). Returns how many weight tensors were quantized."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    _fold_weight_transposes(model.graph)
    _gemm_to_matmul(model.graph)
    ops = ("MatMul", "Gather") if s.embeddings else ("MatMul",)
    q = MatMulNBitsQuantizer(model, bits=4, block_size=s.block_size, is_symmetric=s.symmetric,
                             accuracy_level=s.accuracy_level or None, op_types_to_quantize=ops,
                             quant_axes=(("MatMul", 0), ("Gather", 1)))
    q.process()
    q.model.save_model_to_file(str(out), False)
    return sum(n.op_type in ("MatMulNBits", "GatherBlockQuantized") for n in onnx.load(str(out)).graph.node)


def _fold_weight_transposes(graph) -> None:
    """Transpose(constant) as a constant of its own: a tied output layer exported with its weights
    stored once reads the embedding table through a Transpose, which MatMulNBits cannot see through
    (int8's quantizer folds it itself)."""
    from onnx import helper, numpy_helper

    weights = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Transpose" and node.input[0] in weights:
            a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
            w = numpy_helper.to_array(weights[node.input[0]])
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.transpose(a.get("perm"))),
                                                             node.output[0]))
            continue
        kept.append(node)
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    del graph.node[:]
    graph.node.extend(kept)


def _gemm_to_matmul(graph) -> None:
    """Gemm(A, B, C) with a constant B and plain attributes (alpha = beta = 1, A not transposed) as
    MatMul(A, B, transposed where transB) + Add(C): the same arithmetic, in nodes MatMulNBits takes."""
    from onnx import helper, numpy_helper

    weights = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in weights or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                or a.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        b = weights[node.input[1]]
        if a.get("transB", 0):
            w = numpy_helper.to_array(b).T.copy()
            b.CopyFrom(numpy_helper.from_array(w, b.name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", node.input[:2], [mm_out], name=f"{node.name}_MatMul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_Add"))
    del graph.node[:]
    graph.node.extend(nodes)

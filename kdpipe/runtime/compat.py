"""Which onnxruntime builds beyond Python's a bundle's model runs in, as the tests measured it.

onnxruntime-node and onnxruntime-web (WebAssembly) are other builds of onnxruntime, and their
operator sets can differ from the Python wheel's (contrib operators, int8 and fp16 kernels). A
bundle says, per runtime, whether every operator type in its model is one that tests/apps ran in
that runtime, in models kdpipe made, with the same predictions as Python's onnxruntime. An operator
outside that set is named as not verified: the model may still run there, but nobody measured it.
tests/apps checks that every operator type listed here did run (so the list cannot claim more than
was measured); extend it only with a test that runs a model holding the new operator.
"""

from __future__ import annotations

from pathlib import Path

# The versions apps/package.json pins: what the tests ran.
VERSIONS = {"onnxruntime-node": "1.30.0", "onnxruntime-web": "1.30.0"}

# Image and feature classifiers (CNN/MLP students, fp32, fp16, int8 dynamic and static QDQ).
_ARRAY_OPS = {"Conv", "Relu", "MaxPool", "Flatten", "Gemm", "MatMul", "Add", "Mul", "Cast", "Reshape",
              "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QuantizeLinear", "DequantizeLinear"}
# Transformer encoders (text classification and embedding students, fp32, fp16 and int8).
_TEXT_OPS = {"Gather", "Shape", "Unsqueeze", "Concat", "Slice", "Sub", "Div", "Sqrt", "Pow", "ReduceMean",
             "Softmax", "Transpose", "Erf", "Where", "Equal", "Expand", "Tanh", "ConstantOfShape", "Constant",
             "Squeeze", "Range", "LayerNormalization", "ReduceSum", "Clip", "Identity", "Neg", "Less",
             "Greater", "Not", "And", "Or", "Max", "Min", "Sigmoid", "Gelu", "FastGelu", "BiasGelu",
             "SkipLayerNormalization", "EmbedLayerNormalization", "Attention", "MultiHeadAttention",
             "Trilu", "Pad", "ScatterND", "GatherElements", "CumSum", "Split", "ReduceMax", "ArgMax",
             "Floor", "Ceil", "Exp", "Log", "Abs"}
VERIFIED_OPS: dict[str, set[str]] = {"onnxruntime-node": _ARRAY_OPS | _TEXT_OPS, "onnxruntime-web": _ARRAY_OPS | _TEXT_OPS}


def op_types(model_path: Path) -> set[str]:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    for fn in model.functions:  # local functions are expanded by the runtime: their bodies count
        ops |= {n.op_type for n in fn.node}
    return ops


def runtimes(model_path: Path) -> dict:
    """kdpipe.json's "runtimes": per runtime, whether the model is verified to run there."""
    ops = op_types(model_path)
    out = {"onnxruntime": {"runs": True, "note": "the Python build the pipeline measured it with; the C, C++, C# "
                                                 "and Java APIs share its core"}}
    for name, verified in VERIFIED_OPS.items():
        missing = sorted(ops - verified)
        entry = {"version": VERSIONS[name], "runs": not missing}
        if missing:
            entry["not_verified_ops"] = missing
        out[name] = entry
    return out

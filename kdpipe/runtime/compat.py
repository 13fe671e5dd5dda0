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

# Operator types tests/apps ran in both runtimes, in image classifiers (CNN/MLP students and teachers:
# fp32, fp16, int8 dynamic and static QDQ) and transformer encoders (text classifiers and embedders:
# fp32, fused fp32, fp16, int8 dynamic plain and fused, int8 static QDQ).
_ARRAY_OPS = {"Add", "Cast", "Conv", "ConvInteger", "DequantizeLinear", "DynamicQuantizeLinear", "Flatten", "Gemm",
              "MatMulInteger", "MaxPool", "Mul", "QuantizeLinear", "Relu", "Reshape"}
_TEXT_OPS = {"Attention", "BiasGelu", "Clip", "Concat", "Constant", "ConstantOfShape", "Div", "EmbedLayerNormalization",
             "Equal", "Erf", "Expand", "Gather", "Identity", "LayerNormalization", "MatMul", "QAttention",
             "QEmbedLayerNormalization", "ReduceSum", "Shape", "SkipLayerNormalization", "Slice", "Softmax", "Sqrt",
             "Sub", "Tanh", "Transpose", "Unsqueeze", "Where"}
ENCODER_OPS = _ARRAY_OPS | _TEXT_OPS  # tests/apps/test_runtimes.py runs each
# ... and in causal LMs (GPT-2 with its KV cache: fp32, fused, int8 dynamic plain and fused, int8
# static, fp16, int4 weight-only) and masked LMs, generating or filling as Python does
# (tests/apps/test_lm_runtimes.py runs each)
LM_OPS = {
    "And",
    "FastGelu",
    "GatherBlockQuantized",
    "IsNaN",
    "LessOrEqual",
    "MatMulNBits",
    "Pow",
    "Range",
    "Split",
    "Squeeze",
}
VERIFIED_OPS: dict[str, set[str]] = {"onnxruntime-node": ENCODER_OPS | LM_OPS, "onnxruntime-web": ENCODER_OPS | LM_OPS}


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

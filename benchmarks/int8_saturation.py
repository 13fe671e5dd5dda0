"""Does onnxruntime's int8 saturate on this CPU? On x86 without VNNI (AVX2, AVX-512 without VNNI)
its u8s8 kernels add pairs of uint8 x int8 products in 16 bits, which can overflow with full-range
int8 weights; 7-bit weights (`quantize.reduce_range: true`) or uint8 weights cannot. Quantizes an
fp32 ONNX model with float inputs (an image model) dynamically the three ways and prints each one's
largest difference from the fp32 outputs on the same random inputs. Where full-range weights are
far worse than 7-bit ones, the CPU saturates: quantization error alone would go the other way.

    python benchmarks/int8_saturation.py artifacts/default/export/student.onnx
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

from kdpipe.runtime.machine import machine_info


def run(path: str, feeds: dict) -> np.ndarray:
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    s = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.random([d if isinstance(d, int) else args.batch for d in i.shape], dtype=np.float32)
             for i in s.get_inputs()}
    ref = s.run(None, feeds)[0]
    ways = {
        "int8 weights, full range (quantize.reduce_range: false)": dict(weight_type=QuantType.QInt8),
        "int8 weights, 7 bits (kdpipe's default, quantize.reduce_range: true)": dict(
            weight_type=QuantType.QInt8, reduce_range=True
        ),
        "uint8 weights": dict(weight_type=QuantType.QUInt8),
    }
    simd = ", ".join(machine_info()["simd"]) or "none known"
    print(f"{args.model}, CPU SIMD: {simd}; max |int8 - fp32| over {args.batch} random inputs")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in ways.items():
            out = str(Path(tmp) / "q.onnx")
            quantize_dynamic(args.model, out, **kw)
            print(f"| {name} | {float(np.abs(run(out, feeds) - ref).max()):.4f} |")


if __name__ == "__main__":
    main()

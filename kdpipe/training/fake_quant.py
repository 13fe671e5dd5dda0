"""The arithmetic of onnxruntime's quantized kernels, emulated in PyTorch, so a model can be trained
(quantization-aware distillation) as the exported graph will run it.

Each emulation rounds exactly as the onnxruntime kernel the quantize stage makes does (checked against
it in tests/training/test_fake_quant.py), and passes gradients straight through the rounding:

- int8 dynamic (MatMulInteger, ConvInteger, quantized Gather): weights symmetric int8, per output
  channel or per tensor, scale max|w| / 64 with 7-bit weights (reduce_range) else / 127; the input of
  each layer uint8 asymmetric per tensor with its scale computed on each call from the tensor's own
  range, as DynamicQuantizeLinear does; an embedding table uint8 asymmetric per tensor.
- int4 weight-only (MatMulNBits, GatherBlockQuantized): weights in blocks of `block_size` along the
  input axis, each block's largest-magnitude value mapped to -8 (scale = that value / -8, values
  rounded and clipped to the 16 levels); at accuracy level 4 the kernel also rounds its input to
  symmetric int8 per block of the same size.

Scales follow the weights as they train (max|w| on every step, as the quantizer will compute them
from the trained weights), so the trained fp32 weights are exported as they are and quantized by the
same onnxruntime quantizer as the post-training variant: the graph it writes runs the arithmetic
trained here.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Int8Scheme:
    per_channel: bool = True
    reduce_range: bool = True
    linear: bool = True  # MatMul / Gemm
    conv: bool = False  # Conv
    embedding: bool = False  # Gather from a weight table
    learn_scales: bool = False  # LSQ: linear layers' per-channel weight scales trained too (learned_scales)

    @classmethod
    def for_ops(cls, op_types: list[str] | None, per_channel: bool, reduce_range: bool,
                learn_scales: bool = False) -> "Int8Scheme":
        """The layers onnxruntime's dynamic quantizer quantizes for these op types (None: all it can)."""
        ops = set(op_types) if op_types else {"MatMul", "Gemm", "Conv", "Gather"}
        return cls(per_channel, reduce_range, linear=bool(ops & {"MatMul", "Gemm"}), conv="Conv" in ops,
                   embedding="Gather" in ops, learn_scales=learn_scales and per_channel)


@dataclass(frozen=True)
class Int4Scheme:
    block_size: int = 32
    accuracy_level: int = 4
    embedding: bool = True


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q forward, identity backward (the straight-through estimator)."""
    return x + (q - x).detach()


def uint8_dynamic(x: torch.Tensor) -> torch.Tensor:
    """DynamicQuantizeLinear then dequantized: per-tensor uint8 over [min(0, x), max(0, x)]."""
    with torch.no_grad():
        lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
        scale = (hi - lo) / 255.0
        if float(scale) == 0.0:
            return x
        zp = torch.clamp(torch.round(-lo / scale), 0, 255)
        q = (torch.clamp(torch.round(x / scale) + zp, 0, 255) - zp) * scale
    return _ste(x, q)


def int8_symmetric(w: torch.Tensor, per_channel: bool, reduce_range: bool) -> torch.Tensor:
    """Symmetric int8 weights (dim 0 is the output channel), dequantized."""
    levels = 64.0 if reduce_range else 127.0
    with torch.no_grad():
        amax = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) if per_channel else w.abs().max()
        scale = torch.where(amax > 0, amax / levels, torch.ones_like(amax))
        q = torch.clamp(torch.round(w / scale), -levels, levels) * scale
    return _ste(w, q)


def int4_blocks(w: torch.Tensor, block: int) -> torch.Tensor:
    """Block-wise symmetric int4 along the last axis (MatMulNBits' K, an embedding's width), dequantized.
    A last axis that is not a multiple of the block is padded with zeros, as the quantizer pads."""
    with torch.no_grad():
        b = _blocks(w, block)
        scale = torch.gather(b, -1, b.abs().argmax(-1, keepdim=True)) / -8.0
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        q = _unblocks((torch.clamp(torch.round(b / scale) + 8, 0, 15) - 8) * scale, w)
    return _ste(w, q)


def int8_blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """MatMulNBits' accuracy level 4 input: symmetric int8 per block of the last axis, dequantized."""
    with torch.no_grad():
        b = _blocks(x, block)
        scale = b.abs().amax(-1, keepdim=True) / 127.0
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        q = _unblocks(torch.round(b / scale) * scale, x)
    return _ste(x, q)


def _blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """The last axis cut into blocks of `block` ([..., n_blocks, block]), zero-padded as the quantizer pads."""
    return F.pad(x, (0, (-x.shape[-1]) % block)).reshape(*x.shape[:-1], -1, block)


def _unblocks(b: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return b.reshape(*like.shape[:-1], -1)[..., : like.shape[-1]]


def _linear_layers(model: nn.Module):
    """(module, weight layout) for every layer that exports as a MatMul/Gemm with a constant weight:
    nn.Linear ([out, in]) and transformers' GPT-2 Conv1D ([in, out])."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            yield m, "out_in"
        elif type(m).__name__ == "Conv1D" and hasattr(m, "nf"):
            yield m, "in_out"


LEARNED = "qad_log_scale"  # the parameter a linear layer carries while its weight scales are learned


def _learned_scale(w: torch.Tensor, log_scale: torch.Tensor, levels: float) -> torch.Tensor:
    """A per-channel scale learned in log space, never above max|w| / levels: a larger one would clip
    nothing, and onnxruntime's quantizer, which derives the scale from the weights, could not give it."""
    cap = (w.detach().abs().amax(1, keepdim=True) / levels).clamp_min(1e-12)
    return torch.minimum(log_scale.exp(), cap)


def int8_learned(w: torch.Tensor, log_scale: torch.Tensor, levels: float) -> torch.Tensor:
    """LSQ (Esser et al. 2020): weights rounded on a learned per-channel scale, clipped beyond it; the
    rounding passes gradients straight through, the scale's gradient scaled by 1/sqrt(n * levels)."""
    s = _learned_scale(w, log_scale, levels)
    g = 1.0 / math.sqrt(w.shape[1] * levels)
    s = s * g + (s - s * g).detach()
    q = torch.clamp(w / s, -levels, levels)
    return (q + (torch.round(q) - q).detach()) * s


def _tied(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def _int8_forwards(model: nn.Module, s: Int8Scheme) -> dict:
    out = {}
    levels = 64.0 if s.reduce_range else 127.0
    tied = _tied(model)
    if s.linear:
        for m, layout in _linear_layers(model):
            w0 = m.weight if layout == "out_in" else m.weight.t()
            if s.learn_scales and id(m.weight) not in tied and not hasattr(m, LEARNED):
                init = (w0.detach().abs().amax(1, keepdim=True) / levels).clamp_min(1e-12).log()
                m.register_parameter(LEARNED, nn.Parameter(init.clone()))
                m.qad_transposed = layout == "in_out"  # how to clip its weight when done

            def fwd(x, m=m, layout=layout):
                w = m.weight if layout == "out_in" else m.weight.t()
                wq = int8_learned(w, getattr(m, LEARNED), levels) if hasattr(m, LEARNED) else \
                    int8_symmetric(w, s.per_channel, s.reduce_range)
                return F.linear(uint8_dynamic(x), wq, m.bias)
            out[m] = fwd
    if s.conv:
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                # ConvInteger takes one weight zero point: onnxruntime quantizes conv weights per tensor
                out[m] = lambda x, m=m: m._conv_forward(
                    uint8_dynamic(x), int8_symmetric(m.weight, False, s.reduce_range), m.bias
                )
    if s.embedding:
        for m in model.modules():
            if isinstance(m, nn.Embedding):
                out[m] = lambda ids, m=m: F.embedding(ids, uint8_dynamic(m.weight), m.padding_idx)
    return out


def _int4_forwards(model: nn.Module, s: Int4Scheme) -> dict:
    out = {}
    for m, layout in _linear_layers(model):
        def fwd(x, m=m, layout=layout):
            w = m.weight if layout == "out_in" else m.weight.t()  # [out, in]: blocks along the input axis
            x = int8_blocks(x, s.block_size) if s.accuracy_level == 4 else x
            return F.linear(x, int4_blocks(w, s.block_size), m.bias)
        out[m] = fwd
    if s.embedding:
        for m in model.modules():
            if isinstance(m, nn.Embedding):
                out[m] = lambda ids, m=m: F.embedding(ids, int4_blocks(m.weight, s.block_size), m.padding_idx)
    return out


@contextlib.contextmanager
def emulated(model: nn.Module, scheme: Int8Scheme | Int4Scheme):
    """Within the block, `model` computes as its quantized export will; on leaving, its layers compute
    in float again (the weights are what training made of them). Yields how many layers are emulated."""
    forwards = _int8_forwards(model, scheme) if isinstance(scheme, Int8Scheme) else _int4_forwards(model, scheme)
    for m, fwd in forwards.items():
        m.forward = fwd  # an instance attribute shadows the class's forward
    try:
        yield len(forwards)
    finally:
        for m in forwards:
            del m.forward
            if hasattr(m, LEARNED):
                _clip_to_learned(m, scheme)


@torch.no_grad()
def _clip_to_learned(m: nn.Module, scheme: Int8Scheme) -> None:
    """Clip a layer's weights to its learned scale and drop the scale: each channel's largest weight is
    then levels x scale exactly, so onnxruntime's quantizer, deriving the scale from the weights, rounds
    them on the scale that was learned."""
    levels = 64.0 if scheme.reduce_range else 127.0
    transposed = m.__dict__.pop("qad_transposed", False)
    w = m.weight.t() if transposed else m.weight
    bound = _learned_scale(w, getattr(m, LEARNED), levels) * levels
    clipped = torch.maximum(torch.minimum(w, bound), -bound)
    m.weight.copy_(clipped.t() if transposed else clipped)
    delattr(m, LEARNED)

"""Set a model's dropout for training (distill.dropout): every nn.Dropout, the float dropout rates
attention modules pass to fused kernels (transformers' SDPA attention reads `dropout_prob`, not its
nn.Dropout), and a transformers config's rates, so what `save_pretrained` records is what trained."""

from __future__ import annotations

from torch import nn

_RATE_ATTRS = ("dropout_prob", "attention_dropout", "dropout", "attn_pdrop", "resid_pdrop")


def _is_rate(value) -> bool:
    return isinstance(value, float) and 0.0 <= value < 1.0  # bool is no float: flags are never touched


def set_dropout(model: nn.Module, p: float) -> int:
    """Every dropout rate of `model` becomes `p`; returns how many places were set (0: the model has
    no dropout, which the caller may want to say)."""
    n = 0
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):  # Dropout, Dropout1d/2d/3d, AlphaDropout
            module.p = p
            n += 1
            continue
        for attr in _RATE_ATTRS:
            if _is_rate(getattr(module, attr, None)):
                setattr(module, attr, p)
                n += 1
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict"):  # a transformers PretrainedConfig
            for key, value in config.to_dict().items():
                if ("dropout" in key or "pdrop" in key) and _is_rate(value):
                    setattr(config, key, p)
    return n

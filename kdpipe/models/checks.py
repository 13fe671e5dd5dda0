"""Checks a model passes before any training: what would otherwise surface as a NaN loss mid-epoch
or a traceback from the optimiser (a zero-width layer, no parameters, NaN weights, outputs that are
not finite float scores)."""

from __future__ import annotations

import torch
from torch import nn

from kdpipe.errors import ModelError


def check_trainable(model: nn.Module, out, where: str, *, trains: bool, weights: str | None = None) -> None:
    """`out`: the model's output on a few real training inputs. `trains`: whether kdpipe will train it
    (it then needs parameters to optimise). `weights`: the checkpoint its weights came from, if any."""
    for name, p in model.named_parameters():
        if p.numel() == 0:
            raise ModelError(f"{where}: parameter {name!r} has shape {tuple(p.shape)}, no values at all "
                             "(a layer of width 0?); give every layer a width of at least 1")
    if trains and not any(p.requires_grad for p in model.parameters()):
        raise ModelError(f"{where}: the model has no trainable parameters, so there is nothing to train")
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            came = f" (loaded from {weights})" if weights else ""
            raise ModelError(f"{where}: weight {name!r} holds NaN or infinite values{came}")
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        got = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{where}: returns {got} values; kdpipe trains on float scores (logits or embeddings)")
    if not bool(torch.isfinite(out.detach()).all()):
        raise ModelError(f"{where}: returns NaN or infinite values on real training inputs, before any training; "
                         "check the model's forward (and its weights)")

"""Structured pruning of array models (MLPs, CNNs): whole channels and neurons removed with
Torch-Pruning, so the smaller model is really smaller and faster (transformers: models/hf_prune.py)."""

from __future__ import annotations

import torch
from torch import nn


def prune_structured(
    model: nn.Module, input_shape, num_classes: int, ratio: float, round_to: int | None = None
) -> None:
    """Remove `ratio` of the channels/neurons of every prunable layer except the classifier; with
    round_to, the widths kept are multiples of it (SIMD kernels run odd widths slowly)."""
    import torch_pruning as tp

    model.cpu().eval()
    example = torch.zeros(1, *input_shape)
    # The layer that produces the class logits keeps its outputs; the class count is fixed.
    ignored = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=ratio,
        ignored_layers=ignored, round_to=round_to,
    )
    pruner.step()


"""Training to convergence (`distill.epochs: auto`): the learning rate is held after its warm-up (a
cosine decay would need the run's length, which is what is being found); when the validation loss
has not improved for `patience` epochs it is divided by 10, at most DECAYS times, and after the last
the training stops; it also stops when the time budget is spent. The best epoch's weights are kept.
(Stopping at the first stall under a cosine decay planned for the cap left a MiniLM student 4 points
below the same student trained 11 epochs to a fully decayed rate.)

The monitored loss is the one the model learns from, on the validation split: for a KD student the
KD loss against the teacher's outputs there, for the baseline its loss on the labels. A loss moves
smoothly where a few hundred validation samples make accuracy jump by whole samples. The state
travels in the training checkpoint, so a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

MIN_DELTA = 1e-4  # a relative improvement smaller than this is noise, not progress
DECAYS = 2  # stalls that divide the learning rate by 10 before one ends the training


class EarlyStop:
    def __init__(self, patience: int, max_seconds: float | None, monitor: Callable[[nn.Module], float],
                 decays: int = DECAYS):
        self.patience, self.max_seconds, self.monitor, self.decays = patience, max_seconds, monitor, decays
        self.best, self.best_epoch, self.bad, self.seconds = math.inf, 0, 0, 0.0
        self.best_state: dict | None = None
        self.reason = ""
        self.lr_scale = 1.0  # the training loop multiplies its learning rate by this
        self.decayed_at: list[int] = []  # the epochs after which the rate was divided

    def update(self, epoch: int, model: nn.Module, seconds: float) -> bool:
        """After an epoch that took `seconds`: True when training should stop."""
        self.seconds += seconds
        value = self.monitor(model)
        if value < self.best - MIN_DELTA * abs(self.best if math.isfinite(self.best) else value):
            self.best, self.best_epoch, self.bad = value, epoch, 0
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            self.bad += 1
        if self.bad >= self.patience and len(self.decayed_at) < self.decays:
            self.lr_scale, self.bad = self.lr_scale / 10, 0
            self.decayed_at.append(epoch)
        elif self.bad >= self.patience:
            self.reason = f"no lower validation loss for {self.patience} epochs" + (
                f"; the learning rate was divided by 10 after epoch{'s' if len(self.decayed_at) > 1 else ''} "
                + ", ".join(map(str, self.decayed_at)) if self.decayed_at else "")
        elif self.max_seconds is not None and self.seconds >= self.max_seconds:
            self.reason = f"the time budget ({self.max_seconds / 60:g} min) was spent"
        return bool(self.reason)

    def finish(self, model: nn.Module, epochs_run: int, cap: int) -> dict:
        """Put the best epoch's weights back; what the manifest records of the stop."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return {"epochs_run": epochs_run, "best_epoch": self.best_epoch, "max_epochs": cap,
                "best_val_loss": round(self.best, 6) if math.isfinite(self.best) else None,
                "stopped": self.reason or f"reached the cap of {cap} epochs", "seconds": round(self.seconds, 2),
                "lr_divided_after": self.decayed_at}

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad, "seconds": self.seconds,
                "best_state": self.best_state, "reason": self.reason, "lr_scale": self.lr_scale,
                "decayed_at": self.decayed_at}

    def load(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad = state["best"], state["best_epoch"], state["bad"]
        self.seconds, self.best_state, self.reason = state["seconds"], state["best_state"], state["reason"]
        self.lr_scale, self.decayed_at = state["lr_scale"], list(state["decayed_at"])


def validation_loss(loss: Callable, teacher: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int = 64) -> Callable[[nn.Module], float]:
    """model -> the mean of `loss(model(x), teacher(x) or None, y)` over the validation split, in batches."""
    def monitor(model: nn.Module) -> float:
        was = model.training
        model.eval()
        total = 0.0
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size]
                t = teacher(xb).float() if teacher is not None else None
                total += float(loss(model(xb).float(), t, y[i:i + batch_size])) * len(xb)
        model.train(was)
        return total / max(len(x), 1)
    return monitor

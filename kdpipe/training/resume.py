"""Training checkpoints for resume: model, optimiser, scheduler, RNG states, epoch and history.

Kept in <run>/.checkpoints/<stage>/<role>.pt while a stage runs, written atomically at the end of
every `checkpoint_every` epochs, loaded with weights_only=True. Each carries a key made of the
stage's fingerprint and its upstream run ids: a checkpoint from another config is ignored, never
resumed from.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from kdpipe.io import atomic_write_bytes
from kdpipe.progress import say


@dataclass
class TrainCheckpoint:
    path: Path
    key: str
    every: int = 1  # epochs; 0 = never save

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn or foreign file: start this training over
            say(f"[resume] ignoring unreadable checkpoint {self.path.name} ({type(e).__name__})")
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        return state

    def due(self, epoch: int, last: int) -> bool:
        return self.every > 0 and (epoch % self.every == 0 or epoch == last)

    def save(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save({**state, "key": self.key}, buf)
        atomic_write_bytes(self.path, buf.getvalue())

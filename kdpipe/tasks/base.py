"""What a task (classification of arrays or text, causal LM, masked LM, embedding) tells the stages.

The stages are task-agnostic: they ask the task for data, models, losses, the metric, model files,
the ONNX export and the session inputs. A task's models map one input tensor (pixels, token ids,
or token ids stacked with their attention mask) to one output tensor (logits, or an embedding), so
one training loop and one evaluation path serve every task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np
from torch import nn

from kdpipe.metrics import Metric


class Task(ABC):
    name: str
    metric: Metric
    quantize_op_types: list[str] | None = None  # None: every op onnxruntime's quantizer supports
    dynamic_extra_ops: list[str] = []  # more op types for dynamic int8 only
    takes_other_texts = False  # data.extra_texts and data.other_source apply
    targets_from_teacher = False  # y is the teacher's output (embeddings): KD needs no live teacher pass
    generates = False  # a causal LM: the benchmark times text generation too

    @property
    def card_task(self) -> str:
        """The task as the model card and model hubs name it."""
        return self.name

    def kd_settings(self, dc) -> dict:
        """The distill settings this task's KD loss uses beyond temperature and alpha (for the record)."""
        return {}

    @abstractmethod
    def load_data(self, cfg):
        """Train/val/test splits (each with .x model inputs and .y targets as numpy) plus what the
        bundle needs; loaded once per process."""

    @abstractmethod
    def preflight(self, cfg, data) -> None:
        """Checks before any run folder is touched (models build, outputs line up with the data)."""

    @abstractmethod
    def build(self, role: str, cfg, data, teacher: nn.Module | None = None) -> tuple[nn.Module, dict]:
        """The teacher or the student (possibly derived from the teacher) and a spec to rebuild it."""

    @abstractmethod
    def losses(self, cfg) -> tuple[Callable, Callable]:
        """(hard loss, KD loss), each called as loss(student_logits, teacher_logits, targets)."""

    @abstractmethod
    def save(self, model: nn.Module, folder: Path, name: str, spec: dict, data) -> Path:
        """Write a model under `folder`; returns the file or folder that holds it."""

    @abstractmethod
    def load(self, path: Path, where: str) -> tuple[nn.Module, dict]:
        """A model written by `save`, ready for inference."""

    @abstractmethod
    def export_onnx(self, model: nn.Module, saved: Path, out: Path, opset: int, data) -> None:
        """fp32 ONNX at `out` with dynamic batch (and sequence) axes."""

    @abstractmethod
    def feeds(self, input_names: list[str], x: np.ndarray) -> dict:
        """The onnxruntime inputs (by the graph's input names) for a batch of model inputs."""

    @abstractmethod
    def write_bundle(self, folder: Path, onnx_model: Path, variant: str, saved_source: Path, data, metric: dict,
                     cfg) -> dict:
        """The deployable folder: the model and what an app needs to use it."""

    def prune(self, model: nn.Module, spec: dict, data, pc) -> tuple[nn.Module, dict, dict]:
        """Structured pruning for the prune stage: (smaller model, its spec, what was removed)."""
        raise NotImplementedError(f"structured pruning is not implemented for {self.name} models")

    def cache_parity(self, session, x: np.ndarray) -> dict | None:
        """Where the exported graph has a KV cache: how far token-by-token logits with the cache are
        from the whole sequence's (export records it beside the torch parity); None otherwise."""
        return None

    def fuse(self, onnx_path: Path, out: Path, model: nn.Module) -> dict | None:
        """onnxruntime's transformer graph fusions, where the model type allows: writes `out` and
        returns the fused-operator counts, or None when there is nothing to fuse."""
        return None


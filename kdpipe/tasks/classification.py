"""Classification of arrays (images, feature vectors): built-in/torchvision/python models,
safetensors files, torch.onnx export, and a bundle with labels and preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kdpipe.errors import ConfigError, KdpipeError
from kdpipe.metrics import ACCURACY
from kdpipe.models.checkpoint import load_model, load_weights_into, read_state_dict, save_model
from kdpipe.models.checks import check_trainable
from kdpipe.models.factory import build_model
from kdpipe.models.prune import prune_structured
from kdpipe.tasks.base import Task
from kdpipe.training.kd_loss import hard_loss, kd_loss_fn


class Classification(Task):
    name = "classification"
    metric = ACCURACY

    def load_data(self, cfg):
        from kdpipe.data.splits import load_splits

        return load_splits(cfg)

    def preflight(self, cfg, data) -> None:
        if cfg.distill.intermediate.enabled:
            raise ConfigError("distill.intermediate: layer matching needs transformers models (hf:, hf-config:, "
                              "derive:teacher); these are array models")
        sample = torch.from_numpy(data.train.x[:2])
        for role in ("teacher", "student"):
            section = getattr(cfg, role)
            model, _ = self.build(role, cfg, data)  # the teacher with its weights: a bad checkpoint fails here
            try:
                with torch.inference_mode():
                    out = model.eval()(sample)
            except Exception as e:  # the model cannot take this data's inputs
                raise KdpipeError(
                    f"{role}.model {section.model!r}: fails on inputs of shape "
                    f"{tuple(sample.shape)}: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
                ) from None
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, data.num_classes):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise KdpipeError(f"{role}.model {section.model!r}: outputs {shape} for 2 samples, but the data has "
                                  f"{data.num_classes} classes, so teacher and student outputs must be "
                                  f"(2, {data.num_classes})")
            trains = role == "student" or not cfg.teacher.weights or cfg.teacher.finetune
            check_trainable(model, out, f"{role}.model {section.model!r}", trains=trains,
                            weights=cfg.teacher.weights if role == "teacher" else None)

    def build(self, role, cfg, data, teacher=None):
        section = getattr(cfg, role)
        spec = {"model": section.model, "params": dict(section.params), "input_shape": list(data.input_shape),
                "num_classes": data.num_classes}
        model = build_model(section.model, section.params, data.input_shape, data.num_classes, f"{role}.model")
        if role == "teacher" and cfg.teacher.weights:
            load_weights_into(model, read_state_dict(cfg.teacher.weights, "teacher.weights"), "teacher.weights")
        return model, spec

    def losses(self, cfg):
        return hard_loss, kd_loss_fn(cfg.distill.temperature, cfg.distill.alpha)

    def prune(self, model, spec, data, pc):
        prune_structured(model, data.input_shape, data.num_classes, pc.ratio, pc.round_to)
        return model, spec, {"method": "magnitude (Torch-Pruning, L2 of each channel group)",
                             "removed": f"{pc.ratio:.0%} of channels/neurons"}

    def save(self, model, folder, name, spec, data) -> Path:
        path = folder / f"{name}.safetensors"
        save_model(model.cpu(), path, spec)
        return path

    def load(self, path, where):
        return load_model(path, where)

    def export_onnx(self, model, saved, out, opset, data) -> None:
        from kdpipe.runtime.onnx_convert import export_onnx

        export_onnx(model, data.input_shape, out, opset)  # the export stage adds the metadata

    def feeds(self, input_names, x: np.ndarray) -> dict:
        return {input_names[0]: x}

    def write_bundle(self, folder, onnx_model, variant, saved_source, data, metric, cfg) -> dict:
        from kdpipe.bundle.folder import write_bundle

        return write_bundle(folder, onnx_model, variant=variant, labels=data.labels, input_shape=data.input_shape,
                            preprocessing=data.preprocessing, metric=metric, task=self.name)

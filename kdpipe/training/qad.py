"""Quantization-aware distillation: a trained model fine-tuned, with its layers computing as the
quantized graph will (training.fake_quant), on the fp32 teacher's outputs with the task's KD loss
(and the labels' loss where labels exist, through the loss's alpha). The teacher corrects the damage
quantization does; the weights that come out are exported and quantized as the post-training variant
is, and then run the arithmetic they were trained under."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from torch import nn

from kdpipe.training.fake_quant import Int4Scheme, Int8Scheme, emulated
from kdpipe.training.intermediate import kd_training
from kdpipe.training.loop import FitResult, Schedule, fit
from kdpipe.training.teacher import history


@dataclass
class QADResult:
    fit: FitResult
    seconds: float
    layers: int  # how many layers computed quantized

    def record(self, schedule: Schedule) -> dict:
        return {"epochs": schedule.epochs, "lr": schedule.lr, "seconds": round(self.seconds, 2),
                "layers_emulated": self.layers, "fake_quant_val": self.fit.final_val, **history(self.fit)}


def epochs_of(cfg, distill_epochs: int | None = None) -> int:
    """quantize.qad.epochs, or a third of the student's epochs (`distill_epochs` where recorded, else
    the most the distill section allows), at least 1."""
    return cfg.quantize.qad.epochs or max(1, math.ceil((distill_epochs or cfg.distill.epochs_at_most) / 3))


def schedule_of(cfg, *, seed: int, distill_epochs: int | None = None) -> Schedule:
    """quantize.qad's schedule; unset epochs and lr follow distillation (a third of the epochs the
    student trained, `distill_epochs` where recorded, else the distill section's; a tenth of its
    learning rate: a fine-tune of weights that have already converged)."""
    q, dc = cfg.quantize.qad, cfg.distill
    section = q.model_copy(update={"epochs": epochs_of(cfg, distill_epochs), "lr": q.lr or dc.lr / 10})
    return Schedule.of(cfg, section, seed=seed)


def train(model: nn.Module, teacher: nn.Module, scheme: Int8Scheme | Int4Scheme, task, cfg, splits, schedule: Schedule,
          *, checkpoint=None, desc: str = "QAD", quiet: bool = False) -> QADResult:
    """Fine-tunes `model` in place under `scheme` against `teacher`'s outputs (cached once, as distill
    caches them). The teacher's hidden states are not matched: only what the model outputs is asked of
    it, so the teacher's outputs alone are computed."""
    _, kd_loss = task.losses(cfg)
    no_matching = cfg.distill.intermediate.model_copy(update={"hidden": None, "attention": None})
    t0 = time.perf_counter()
    with emulated(model, scheme) as layers, kd_training(kd_loss, no_matching, teacher, model, None,
                                                        task.targets_from_teacher) as kd:
        r = fit(model, splits.train, splits.val, schedule, kd.loss, teacher=kd.signal(cfg.distill),
                checkpoint=checkpoint, metric=task.metric, desc=desc, quiet=quiet)
    return QADResult(r, time.perf_counter() - t0, layers)

"""The one training loop: teacher training, the baseline, KD and pruning recovery all use it.

In-memory tensors and index batches (the data sets fit in memory; a DataLoader adds only overhead
here). Adam with a cosine schedule; the model of the last epoch is kept (on validation sets of a few
hundred samples, picking the "best" epoch mostly picks noise). Validation accuracy is recorded per
epoch; the test split is never touched here.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from kdpipe import distributed
from kdpipe.data.splits import length_order, text_lengths
from kdpipe.errors import KdpipeError
from kdpipe.metrics import ACCURACY, Metric
from kdpipe.progress import progress, say
from kdpipe.training.resume import TrainCheckpoint

# Bytes of cached teacher outputs; beyond that the teacher runs live. The text-classification
# example's hidden states (1.3 GB) save a third of every KD step.
CACHE_BUDGET = 2 << 30


@dataclass
class FitResult:
    final_val: float
    history: list[dict] = field(default_factory=list)
    seconds_per_step: float = 0.0
    precision: str = "fp32"  # what it trained in (precision: auto resolved)
    teacher_cache: dict = field(default_factory=dict)  # format, bytes, seconds when outputs were cached
    stopping: dict = field(default_factory=dict)  # epochs: auto: epochs run, the best one, why it stopped


def resolve_device(setting: str, precision: str = "fp32") -> str:
    from kdpipe.errors import ConfigError

    device = ("cuda" if torch.cuda.is_available() else "cpu") if setting == "auto" else setting
    if device == "cuda" and not torch.cuda.is_available():
        build = (
            "this torch is a CPU build"
            if torch.version.cuda is None
            else "no GPU is visible (CUDA_VISIBLE_DEVICES? driver?)"
        )
        raise ConfigError(f"device: cuda was asked for, but torch sees no CUDA device ({build}); use device: auto or "
                          "cpu")
    if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision: bf16 is not supported by {torch.cuda.get_device_name(0)}; use fp32")
    return device


def resolve_precision(setting: str, device: str) -> str:
    """fp32 or bf16: `auto` takes bf16 where the device computes it natively. bf16 asked for on a CPU
    without it runs (emulated, slower than fp32), with a warning."""
    from kdpipe.progress import warn
    from kdpipe.runtime.machine import cpu_has_bf16

    native = torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_bf16()
    if setting == "auto":
        return "bf16" if native else "fp32"
    if setting == "bf16" and not native:
        warn("precision: bf16 on a CPU without AVX512-BF16 or AMX is emulated and trains slower than fp32 "
             "(precision: auto picks fp32 here)")
    return setting


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


@torch.inference_mode()
def batched_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The model's outputs for x in batches, padded texts shortest first (little padding computed);
    the rows come back in x's order."""
    model.eval()
    order = length_order(x)
    xs = x if order is None else x[order]
    out = torch.cat([model(xs[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])
    return out if order is None else out[torch.argsort(order)]


@dataclass(frozen=True)
class Schedule:
    """How a model trains: optimiser schedule, batches, seed and where. `batch_size` is the global
    batch: under torchrun each process takes its share of every batch (and splits it further into
    micro-batches of at most `micro_batch_size`, accumulating gradients), so the optimiser sees the
    same mean gradient whatever the number of processes."""

    epochs: int
    lr: float
    weight_decay: float = 0.0
    warmup: float = 0.0  # fraction of the steps with a linear warm-up
    batch_size: int = 32
    micro_batch_size: int | None = None
    seed: int = 0  # the batch order
    device: str = "cpu"
    precision: str = "fp32"
    # epochs: auto (early_stop): `epochs` is then the cap; stop after `patience` epochs without a lower
    # validation loss, or once `max_seconds` of training are spent
    patience: int | None = None
    max_seconds: float | None = None

    @classmethod
    def of(cls, cfg, section, *, seed: int, epochs: int | None = None) -> "Schedule":
        """From a config's training section (teacher.train, distill, prune.finetune) and its data,
        device and precision settings. A section with `epochs: auto` trains up to its max_epochs,
        until the validation loss stops improving for its patience or its max_minutes run out."""
        auto = section.epochs == "auto"
        if auto:
            epochs = section.max_epochs if epochs is None else epochs
        minutes = getattr(section, "max_minutes", None) if auto else None
        return cls(epochs=section.epochs if epochs is None else epochs, lr=section.lr,
                   patience=section.patience if auto else None, max_seconds=minutes * 60 if minutes else None,
                   weight_decay=section.weight_decay, warmup=section.warmup, batch_size=cfg.data.batch_size,
                   micro_batch_size=cfg.data.micro_batch_size, seed=seed,
                   device=(device := resolve_device(cfg.device, cfg.precision)),
                   precision=resolve_precision(cfg.precision, device))


@dataclass(frozen=True)
class TeacherSignal:
    """The teacher a KD run learns from. Its outputs are cached once when `cache` and they fit
    CACHE_BUDGET (`cache_format` dense, or topk / sampled with `cache_k` entries a position at the
    KD `temperature`: teacher_cache), with its hidden states at the `hidden` layers when those are
    matched; otherwise it runs live on every batch."""

    model: nn.Module
    cache: bool = True
    cache_format: str = "dense"
    cache_k: int = 32
    temperature: float = 1.0
    hidden: tuple[int, ...] = ()

    @classmethod
    def of(cls, model: nn.Module, dc, *, cache: bool = True, hidden: tuple[int, ...] = ()) -> "TeacherSignal":
        """From the distill section (cache_teacher, cache_format, cache_k, temperature); `cache`
        False where something else needs the live teacher (attention-map matching)."""
        return cls(model, dc.cache_teacher and cache, dc.cache_format, dc.cache_k, dc.temperature, hidden)


def _adam(model: nn.Module, sc: Schedule) -> torch.optim.Adam:
    """Adam, fused where torch has the kernel (CPU and CUDA float weights): one pass over each tensor
    instead of a dozen. With a 30k-token embedding table the default step cost 0.7x the forward and
    backward passes together, the fused one 0.1x (benchmarks/adam_step.py); the update is the same arithmetic."""
    params = list(model.parameters())
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=sc.lr, weight_decay=sc.weight_decay, fused=fused or None)


def fit(
    model: nn.Module,
    train,
    val,
    schedule: Schedule,
    loss_fn: Callable,
    *,
    teacher: TeacherSignal | None = None,
    checkpoint: TrainCheckpoint | None = None,
    metric: Metric = ACCURACY,
    desc: str = "train",
    quiet: bool = False,
    monitor_loss: Callable | None = None,
) -> FitResult:
    """Train `model` in place with loss_fn(student_logits, teacher_logits_or_None, labels).

    With a checkpoint, training resumes after the last saved epoch, RNG states included, so a
    resumed run ends exactly where an uninterrupted one would (on the CPU, same threads). With
    schedule.patience (epochs: auto), training stops early on the validation loss of `monitor_loss`
    (default loss_fn; the teacher runs live on validation) and keeps the best epoch (early_stop).
    """
    sc = schedule
    gen = torch.Generator().manual_seed(sc.seed)  # the same on every process: one global batch order
    model.to(sc.device)
    x, y = torch.from_numpy(train.x).to(sc.device), torch.from_numpy(train.y).to(sc.device)
    xv, yv = torch.from_numpy(val.x).to(sc.device), torch.from_numpy(val.y).to(sc.device)
    lengths = text_lengths(train.x)  # texts of similar length batched together (batch_order)
    t_model = _frozen(teacher.model, sc.device) if teacher is not None else None
    cached, cache_info = (_cache_teacher(teacher, t_model, x, checkpoint, sc, desc)
                          if t_model is not None and teacher.cache else (None, {}))
    steps = _Steps(model, sc, loss_fn, x, y, cached, t_model, checkpoint, desc)
    stop = None
    if sc.patience:  # epochs: auto (early_stop): the rate is held, and divided when the validation loss stalls
        from kdpipe.training.early_stop import EarlyStop, validation_loss

        stop = EarlyStop(sc.patience, sc.max_seconds, validation_loss(monitor_loss or loss_fn, t_model, xv, yv))
    sched = torch.optim.lr_scheduler.LambdaLR(steps.opt, _lr_factor(sc, math.ceil(len(y) / sc.batch_size), stop))
    result = FitResult(final_val=_val_score(model, xv, yv, metric))
    start = _resume(checkpoint, model, steps.opt, sched, gen, stop, result, desc, sc.epochs)
    bar = progress(range(start, sc.epochs + 1), desc=desc, quiet=quiet or not distributed.is_main(), unit="epoch")
    for epoch in bar:
        if stop is not None and stop.reason:  # resumed after the epoch that decided to stop
            break
        epoch_start = time.perf_counter()
        total = steps.epoch(epoch, batch_order(len(y), sc.batch_size, gen, lengths), sched)
        val = _val_score(model, xv, yv, metric)
        result.history.append({"epoch": epoch, "loss": total / len(y), f"val_{metric.name}": val})
        result.final_val = val
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / len(y):.4f}", val=f"{val:.2f}{metric.unit}")
        stopping = stop is not None and stop.update(epoch, model, time.perf_counter() - epoch_start)
        if checkpoint and (checkpoint.due(epoch, sc.epochs) or stopping) and distributed.is_main():
            checkpoint.save({
                "model": model.state_dict(), "optimizer": steps.opt.state_dict(), "scheduler": sched.state_dict(),
                "batch_rng": gen.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch,
                "history": result.history, "final_val": result.final_val,
                **({"early_stop": stop.state()} if stop is not None else {}),
            })
        if stopping:
            break
    if stop is not None:
        result.stopping = stop.finish(model, len(result.history), sc.epochs)
        best = stop.best_epoch
        if best:
            result.final_val = result.history[best - 1][f"val_{metric.name}"]
        say(f"[{desc}] kept epoch {best} of {len(result.history)}: {result.stopping['stopped']}")
    model.eval()
    result.seconds_per_step = steps.seconds / max(1, steps.count)
    result.precision = sc.precision
    result.teacher_cache = cache_info
    return result


def _frozen(t_model: nn.Module, device: str) -> nn.Module:
    t_model.to(device).eval()
    for p in t_model.parameters():
        p.requires_grad_(False)
    return t_model


def _cache_teacher(teacher: TeacherSignal, t_model: nn.Module, x: torch.Tensor, checkpoint, sc: Schedule,
                   desc: str) -> tuple[torch.Tensor | None, dict]:
    """The teacher's outputs on the training inputs, computed once (inputs never change between
    epochs), where they fit CACHE_BUDGET; (None, {}) where the teacher must run live."""
    from kdpipe.training import teacher_cache

    fmt, k, hidden = teacher.cache_format, teacher.cache_k, teacher.hidden
    per_sample = teacher_cache.bytes_per_item(t_model, x, fmt, k, hidden)
    if len(x) * per_sample > CACHE_BUDGET:
        what = "teacher outputs and hidden states" if hidden else "teacher outputs"
        say(f"[{desc}] {what} for the training split need {len(x) * per_sample / 2**30:.1f} GiB "
            f"as {fmt}: running the teacher live instead of caching")
        return None, {}
    t0 = time.perf_counter()
    cached, loaded = teacher_cache.load_or_build(checkpoint, t_model, x, fmt, k, teacher.temperature, sc.seed, hidden)
    return cached, {
        "format": fmt,
        "bytes": len(x) * per_sample,
        "reused": loaded,
        "seconds": round(time.perf_counter() - t0, 3),
        **({"hidden_layers": list(hidden)} if hidden else {}),
    }


def _lr_factor(sc: Schedule, steps_per_epoch: int, stop) -> Callable[[int], float]:
    """Linear warm-up (transformers need it with Adam), then cosine decay; with early stopping, the
    rate early_stop holds and divides instead of the decay."""
    steps_per_epoch = max(1, steps_per_epoch)
    total_steps = max(1, sc.epochs * steps_per_epoch)
    warm = int(sc.warmup * total_steps)
    if stop is not None:
        warm = int(sc.warmup * steps_per_epoch * min(sc.epochs, 10))  # the cap is no run's length: warm as a short run

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if stop is not None:
            return stop.lr_scale
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return factor


def _resume(checkpoint, model, opt, sched, gen, stop, result: FitResult, desc: str, epochs: int) -> int:
    """Restores the last saved epoch's state (RNG states included) where there is one; the first epoch to run."""
    state = checkpoint.load() if checkpoint else None
    if state is None:
        return 1
    if stop is not None and state.get("early_stop"):
        stop.load(state["early_stop"])
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["batch_rng"])
    torch.set_rng_state(state["torch_rng"])
    result.history, result.final_val = state["history"], state["final_val"]
    say(f"[resume] {desc}: continuing after epoch {state['epoch']} of {epochs}")
    return state["epoch"] + 1


class _Steps:
    """The optimiser steps of one epoch: each process's share of every batch, split into micro-batches
    with their gradients accumulated, under bf16 autocast where the schedule says so."""

    def __init__(self, model, sc: Schedule, loss_fn, x, y, cached, t_model, checkpoint, desc: str):
        self.model, self.sc, self.loss_fn, self.x, self.y = model, sc, loss_fn, x, y
        self.cached, self.t_model, self.checkpoint, self.desc = cached, t_model, checkpoint, desc
        # bf16 mixed precision: forward and loss under autocast, weights and optimiser state in fp32.
        self.autocast = torch.autocast(device_type=torch.device(sc.device).type, dtype=torch.bfloat16,
                                       enabled=sc.precision == "bf16")
        self.ddp = distributed.wrap(model, sc.device)
        self.opt = _adam(model, sc)
        self.seconds, self.count = 0.0, 0

    def teacher_out(self, idx):
        if self.cached is not None:
            return self.cached[idx]
        if self.t_model is None:
            return None
        with torch.inference_mode():
            out = self.t_model(self.x[idx]).float()
        return out.clone()

    def epoch(self, epoch: int, batches: list[torch.Tensor], sched) -> float:
        """Trains on `batches`; the summed loss over the epoch's samples (all processes)."""
        model, world, total = self.model, distributed.world(), 0.0
        model.train()
        for step, batch in enumerate(batches, 1):
            t0 = time.perf_counter()
            batch = batch.to(self.sc.device)
            mine = batch[distributed.shard(len(batch))]
            chunks = list(mine.split(self.sc.micro_batch_size or max(1, len(mine)))) or [batch[:1]]
            self.opt.zero_grad(set_to_none=True)
            for c, idx in enumerate(chunks):
                # Weight each chunk by its share of the global batch: DDP averages over processes,
                # so sum over chunks and processes gives the mean over the whole batch.
                weight = len(idx) * world / len(batch) if len(mine) else 0.0
                sync = contextlib.nullcontext() if c == len(chunks) - 1 or self.ddp is model else self.ddp.no_sync()
                with sync:
                    with self.autocast:
                        loss = self.loss_fn(self.ddp(self.x[idx]), self.teacher_out(idx), self.y[idx])
                    if not torch.isfinite(loss):
                        self._diverged(loss, epoch, step)
                    (loss * weight).backward()
                if len(mine):
                    total += loss.item() * len(idx)
            self.opt.step()
            sched.step()
            self.seconds += time.perf_counter() - t0
            self.count += 1
        return distributed.all_sum([total], self.sc.device)[0]

    def _diverged(self, loss, epoch: int, step: int):
        kept = f"; the last good checkpoint (epoch {epoch - 1}) is kept" if self.checkpoint and epoch > 1 else ""
        raise KdpipeError(f"{self.desc}: loss became {loss.item()} at epoch {epoch}, step {step}; the learning rate "
                          f"is likely too high for this model (or the data holds extreme values){kept}")


GROUP = 64  # batches a length group spans: shuffled enough, and similar lengths within a batch


def batch_order(n: int, batch_size: int, gen: torch.Generator, lengths: np.ndarray | None = None) -> list[torch.Tensor]:
    """One epoch's batches of indices, in random order. With `lengths` (padded texts), each run of
    GROUP batches of a random permutation is sorted by length before it is cut into batches (as
    transformers' LengthGroupedSampler does), and the batches are shuffled: a batch then holds texts
    of similar length, and the model computes little padding."""
    perm = torch.randperm(n, generator=gen)
    if lengths is None:
        return list(perm.split(batch_size))
    span = GROUP * batch_size
    groups = [g[torch.from_numpy(np.argsort(lengths[g.numpy()], kind="stable"))] for g in perm.split(span)]
    batches = [b for g in groups for b in g.split(batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _val_score(model: nn.Module, xv: torch.Tensor, yv: torch.Tensor, metric: Metric) -> float:
    """The metric on the whole validation split, each process scoring its share once (sums added
    across processes)."""
    part = distributed.shard(len(yv))
    num = den = 0.0
    xs, ys = xv[part], yv[part]
    order = length_order(xs)  # similar lengths in a batch: little padding computed
    if order is not None:
        xs, ys = xs[order], ys[order]
    ys = ys.cpu().numpy()
    for i in range(0, len(xs), 64):
        n, d = metric.partial(batched_logits(model, xs[i : i + 64]).cpu().numpy(), ys[i : i + 64])
        num, den = num + n, den + d
    num, den = distributed.all_sum([num, den], str(xv.device))
    return metric.finish(num, den)

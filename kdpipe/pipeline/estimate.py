"""How long `kdpipe all` will take on this machine, before it runs: a few training steps of the
teacher and the student are timed on real batches of the data (at its typical text length), and the
run's step counts (epochs x batches of each training: the teacher's fine-tune, KD, the no-KD
baseline, pruning's recovery), its evaluation passes and the benchmark's timing budget are added up.
It is a forecast, meant to be right within a factor of 1.5 (tests/pipeline/test_init.py and
benchmarks/README.md compare it with real runs)."""

from __future__ import annotations

import math
import time

import numpy as np

# Seconds the run spends besides training and evaluation: imports, ONNX export and checks, quantization
# and sessions, per model made (measured on the examples: 4-8 s a transformer, ~1 s a small CNN).
PER_MODEL = {"transformer": 6.0, "array": 1.0}
FIXED = 10.0


def _seconds_per_step(model, x, train: bool, repeats: int = 3) -> float:
    import torch

    xb = torch.from_numpy(x)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6) if train else None
    model.train(train)
    times = []
    for i in range(repeats + 1):  # the first call warms up
        t0 = time.perf_counter()
        if train:
            out = model(xb)
            out.float().pow(2).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                model(xb)
        if i:
            times.append(time.perf_counter() - t0)
    model.eval()
    return float(np.median(times))


def _typical_batch(x: np.ndarray, batch: int) -> np.ndarray:
    """A batch of texts around the median length, cut after its longest (as training batches are:
    grouped by length, padding trimmed); other inputs as they are."""
    from kdpipe.data.splits import length_order, trim_padding

    order = length_order(x)
    if order is None:
        return np.ascontiguousarray(x[:batch])
    mid = len(order) // 2
    pick = order[max(0, mid - batch // 2): max(0, mid - batch // 2) + batch]
    return trim_padding(x[np.sort(pick)])


def estimate(cfg) -> tuple[float, list[tuple[str, float]]]:
    """(seconds, [(part, seconds)]) for `kdpipe all` of this config from scratch on this machine."""
    import copy

    from kdpipe.data.splits import labelled, with_every_label
    from kdpipe.tasks import load_data, task_for

    task, data = task_for(cfg), load_data(cfg)
    b = min(cfg.data.batch_size, len(data.train))
    teacher, _ = task.build("teacher", cfg, data)
    student, _ = task.build("student", cfg, data, teacher=teacher)
    student = copy.deepcopy(student)
    xb = _typical_batch(data.train.x, b)
    t_fwd = _seconds_per_step(teacher, xb, train=False)
    s_step = _seconds_per_step(student, xb, train=True)
    s_fwd = _seconds_per_step(student, xb, train=False)
    n_all = len(data.train)
    n_lab = len(labelled(with_every_label(data.train)))
    batches = lambda n: math.ceil(n / b)  # noqa: E731
    dc, tc = cfg.distill, cfg.teacher
    trains_teacher = not (tc.weights or tc.model.startswith("hf:")) or tc.finetune
    parts = []
    if trains_teacher:
        t_step = _seconds_per_step(teacher, xb, train=True)
        parts.append(("teacher training", tc.train.epochs * batches(n_lab) * t_step
                      + tc.train.epochs * batches(len(data.val)) * t_fwd))
    matching = 1.15 if dc.intermediate.enabled else 1.0  # hidden states out of both models, their loss
    parts.append(("teacher outputs for KD (once)", batches(n_all + len(data.val)) * t_fwd * matching))
    parts.append(("KD student", dc.epochs * (batches(n_all) * s_step * matching + batches(len(data.val)) * s_fwd)))
    if dc.baseline and not getattr(task, "targets_from_teacher", False):
        parts.append(("no-KD baseline", dc.epochs * (batches(n_lab) * s_step + batches(len(data.val)) * s_fwd)))
    pruned = cfg.prune.enabled
    if pruned:
        ft = cfg.prune.finetune
        parts.append(("pruning and its recovery", ft.epochs * (batches(n_all) * s_step + batches(len(data.val)) * s_fwd)))
    # every model scored on validation and test, in PyTorch and each ONNX form (fp32, int8, fp16...)
    q = cfg.quantize
    copies = (sum(len(q.calibration) if v == "static" else 2 if v == "dynamic" else 1 for v in q.variants)
              if q.enabled else 0)
    students = 2 + int(pruned) + copies
    held = batches(len(data.val) + len(data.test))
    parts.append(("scoring every model", held * (2 * (students * s_fwd) + 3 * t_fwd)))
    family = "transformer" if cfg.teacher.model.startswith(("hf:", "hf-config:")) else "array"
    models = students + 3
    bc = cfg.benchmark
    inputs = len(bc.batch_sizes) * (1 + len(bc.sequence_lengths or []))
    parts.append(("timing (bundle choice and benchmark)", (models * inputs + models) * bc.min_seconds * 1.3))
    parts.append(("export, quantization, sessions, start-up", FIXED + models * PER_MODEL[family]))
    return sum(s for _, s in parts), [(k, round(v, 1)) for k, v in parts]


def fmt_duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"

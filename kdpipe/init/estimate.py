"""How long `kdpipe all` will take on this machine, before it runs: a few training steps of the
teacher and the student are timed on real batches of the data (at its typical text length), and the
run's step counts (epochs x batches of each training: the teacher's fine-tune, KD, the no-KD
baseline, pruning's recovery), its evaluation passes and the benchmark's timing budget are added up.
It is a forecast, meant to be right within a factor of 1.5 (tests/init/test_init.py and
benchmarks/README.md compare it with real runs)."""

from __future__ import annotations

import math
import time

import numpy as np

# Seconds the run spends besides training and evaluation: imports, ONNX export and checks, quantization
# and sessions, per model made (measured on a MiniLM run: ~10 s a transformer; ~1 s a small CNN).
PER_MODEL = {"transformer": 10.0, "array": 1.0}
FIXED = 10.0
FAKE_QUANT = 1.5  # a QAD step against a plain one: the text example's 94 s epochs against 64 s


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


def _batches_by_length(x: np.ndarray, batch: int) -> list[np.ndarray]:
    """Batches of texts at the 25th, 50th and 75th percentile of length, each cut after its longest (as
    training batches are: grouped by length, padding trimmed): their mean time is a batch's mean time
    closer than the median's, attention costing more than linearly in length. Other inputs: one batch."""
    from kdpipe.data.splits import length_order, trim_padding

    order = length_order(x)
    if order is None:
        return [np.ascontiguousarray(x[:batch])]
    out = []
    for q in (0.25, 0.5, 0.75):
        start = min(max(0, int(len(order) * q) - batch // 2), max(0, len(order) - batch))
        out.append(trim_padding(x[np.sort(order[start:start + batch])]))
    return out


def _mean_seconds(model, batches: list[np.ndarray], train: bool) -> float:
    return float(np.mean([_seconds_per_step(model, xb, train) for xb in batches]))


def _timing_seconds(bc, calls_b1: float, calls_big: float, big: int) -> float:
    """benchmark.timing() on one model at each batch size (runtime.timing.measure_rounds): a warm-up call,
    then each round an untimed call and at least its share of min_runs and of min_seconds."""
    total = 0.0
    for b in bc.batch_sizes:
        t = calls_b1 + (calls_big - calls_b1) * (b - 1) / max(big - 1, 1)
        total += t * (1 + bc.rounds) + max(bc.min_runs * t, bc.min_seconds)
    return total * (1 + len(bc.sequence_lengths or []))


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
    xbs = _batches_by_length(data.train.x, b)
    t_fwd = _mean_seconds(teacher, xbs, train=False)
    s_step = _mean_seconds(student, xbs, train=True)
    s_fwd = _mean_seconds(student, xbs, train=False)
    one = [x[:1] for x in xbs]  # batch 1, for the benchmark's small batch
    t_fwd1, s_fwd1 = _mean_seconds(teacher, one, train=False), _mean_seconds(student, one, train=False)
    n_all = len(data.train)
    n_lab = len(labelled(with_every_label(data.train)))
    batches = lambda n: math.ceil(n / b)  # noqa: E731
    dc, tc = cfg.distill, cfg.teacher
    trains_teacher = not (tc.weights or tc.model.startswith("hf:")) or tc.finetune
    parts = []
    if trains_teacher:
        t_step = _mean_seconds(teacher, xbs, train=True)
        parts.append(("teacher training", tc.train.epochs * batches(n_lab) * t_step
                      + tc.train.epochs * batches(len(data.val)) * t_fwd))
    matching = 1.15 if dc.intermediate.enabled else 1.0  # hidden states out of both models, their loss
    parts.append(("teacher outputs for KD (once)", batches(n_all + len(data.val)) * t_fwd * matching))
    parts.append(
        ("KD student", dc.epochs_at_most * (batches(n_all) * s_step * matching + batches(len(data.val)) * s_fwd))
    )
    if dc.baseline and not getattr(task, "targets_from_teacher", False):
        parts.append(("no-KD baseline", dc.epochs_at_most * (batches(n_lab) * s_step + batches(len(data.val)) * s_fwd)))
    pruned = cfg.prune.enabled
    if pruned:
        ft = cfg.prune.finetune
        parts.append(
            ("pruning and its recovery", ft.epochs * (batches(n_all) * s_step + batches(len(data.val)) * s_fwd))
        )
    q = cfg.quantize
    qads = [v for v in q.variants if v.startswith("qad-")] if q.enabled else []
    if qads:  # each QAD copy: a third of the student's epochs (at most), fake quantization costing ~1.5x a step
        from kdpipe.training.qad import epochs_of

        epochs = epochs_of(cfg)
        per_epoch = batches(n_all) * s_step * FAKE_QUANT + batches(len(data.val)) * s_fwd
        own = (batches(n_all) * _mean_seconds(teacher, xbs, train=True) * FAKE_QUANT
               + batches(len(data.val)) * t_fwd) if q.qad.teacher else 0.0  # the teacher into its own int8/int4
        parts.append(("quantization-aware distillation", len(qads) * epochs * (per_epoch + own)))
    # every model scored on validation and test: in PyTorch (teacher, student, baseline) and in each ONNX
    # form (fp32, int8, fp16 ...), the teacher's fp32 and int8 too
    copies = (sum(len(q.calibration) if v == "static" else 2 if v == "dynamic" else 1 for v in q.variants)
              if q.enabled else 0)
    students = 2 + int(pruned) + copies
    held = batches(len(data.val) + len(data.test))
    parts.append(("scoring every model", held * ((students + 2) * s_fwd + 3 * t_fwd)))
    family = "transformer" if cfg.text_data else "array"
    bc = cfg.benchmark
    big = max(bc.batch_sizes)
    t_big, s_big = t_fwd * big / b, s_fwd * big / b  # a batch's time grows about linearly with its size
    bench = (3 * _timing_seconds(bc, t_fwd1, t_big, big)  # the teacher in PyTorch, ONNX fp32 and int8
             + students * _timing_seconds(bc, s_fwd1, s_big, big))
    choice = (students + 1) * _timing_seconds(bc.model_copy(update={"batch_sizes": [1], "sequence_lengths": None}),
                                              s_fwd1, s_fwd1, 1)
    parts.append(("timing (bundle choice and benchmark)", bench + choice))
    parts.append(("export, quantization, sessions, start-up", FIXED + (students + 3) * PER_MODEL[family]))
    return sum(s for _, s in parts), [(k, round(v, 1)) for k, v in parts]


def fmt_duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"

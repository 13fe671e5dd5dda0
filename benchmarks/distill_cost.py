"""What distillation costs per training step: KD with the teacher live, KD with the teacher's logits
cached, and the student trained alone; same data, batch and model. Prints the ratios last.

    python benchmarks/distill_cost.py configs/default.yaml [--epochs 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import replace

from kdpipe.data.splits import load_splits
from kdpipe.models.factory import build_model
from kdpipe.pipeline.config import load_config
from kdpipe.training.kd_loss import hard_loss, kd_loss_fn
from kdpipe.training.loop import Schedule, TeacherSignal, batched_logits, fit, seed_everything


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    splits = load_splits(cfg)
    seed_everything(cfg.seed)
    teacher = build_model(cfg.teacher.model, cfg.teacher.params, splits.input_shape, splits.num_classes, "teacher")
    student = build_model(cfg.student.model, cfg.student.params, splits.input_shape, splits.num_classes, "student")
    dc = cfg.distill
    schedule = Schedule(epochs=args.epochs, lr=dc.lr, batch_size=cfg.data.batch_size)

    import torch

    xt = torch.from_numpy(splits.train.x)
    batched_logits(teacher, xt[:512])  # warm-up
    t0 = time.perf_counter()
    batched_logits(teacher, xt)
    cache_once = time.perf_counter() - t0

    kd = kd_loss_fn(dc.temperature, dc.alpha)
    variants = [("student alone", (hard_loss, None)),
                ("KD, teacher live", (kd, TeacherSignal(teacher, cache=False))),
                ("KD, teacher cached", (kd, TeacherSignal(teacher, cache=True)))]
    for _, (loss, signal) in variants:  # warm-up
        fit(copy.deepcopy(student), splits.train, splits.val, replace(schedule, epochs=1), loss, teacher=signal,
            quiet=True)
    samples: dict[str, list[float]] = {name: [] for name, _ in variants}
    for _ in range(args.rounds):  # interleaved rounds: drift in machine speed hits every variant alike
        for name, (loss, signal) in variants:
            r = fit(copy.deepcopy(student), splits.train, splits.val, schedule, loss, teacher=signal, quiet=True)
            samples[name].append(r.seconds_per_step)
    runs = {name: statistics.median(v) for name, v in samples.items()}
    steps = -(-len(splits.train) // cfg.data.batch_size) * args.epochs
    full = -(-len(splits.train) // cfg.data.batch_size) * dc.epochs  # a whole distill run's steps
    base = runs["student alone"]
    print(f"\n{len(splits.train)} training samples, batch {cfg.data.batch_size}, {args.epochs} epochs ({steps} steps) "
          f"x {args.rounds} rounds; torch threads {torch.get_num_threads()}; median of rounds (all rounds)")
    for name, sec in runs.items():
        print(f"{name:20s} {sec * 1000:8.3f} ms/step  ({', '.join(f'{v * 1000:.3f}' for v in samples[name])})")
    print(f"teacher logits for the whole training split, once: {cache_once * 1000:.1f} ms "
          f"({cache_once / full * 1000:.3f} ms per step over the config's {dc.epochs} epochs)")
    print(f"\nKD live / student alone:   {runs['KD, teacher live'] / base:.2f}x")
    print(f"KD cached / student alone: {runs['KD, teacher cached'] / base:.2f}x "
          f"({(runs['KD, teacher cached'] + cache_once / full) / base:.2f}x with the one-time cache cost spread over "
          f"the config's {dc.epochs} epochs)")


if __name__ == "__main__":
    main()

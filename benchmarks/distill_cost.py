"""What distillation costs per training step: KD with the teacher live, KD with the teacher's outputs
cached (with its hidden states where the config matches them, `distill.intermediate`), and the
student trained alone on the labelled rows; same data, batch and model, built as the distill stage
builds them (the task's models and losses; the teacher as loaded, untrained: its cost is the same).
Rounds interleave the variants, so drift in the machine's speed falls on all alike. Prints the
ratios last.

    python benchmarks/distill_cost.py configs/default.yaml [--epochs 3]
    python benchmarks/distill_cost.py configs/text-classification.yaml --epochs 1 --rounds 2 \\
        --set data.extra_texts_max=500
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import replace

from common import config_parser, load

from kdpipe.data.splits import labelled
from kdpipe.runtime.machine import machine_info
from kdpipe.training.intermediate import kd_training
from kdpipe.training.loop import Schedule, fit, seed_everything
from kdpipe.training.teacher_cache import build


def main() -> None:
    ap = config_parser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cfg, task, data = load(args)
    seed_everything(cfg.seed)
    teacher, _ = task.build("teacher", cfg, data)
    student, s_spec = task.build("student", cfg, data, teacher)
    dc = cfg.distill
    hard, kd_loss = task.losses(cfg)
    schedule = replace(Schedule.of(cfg, dc, seed=cfg.seed), epochs=args.epochs)
    layers = s_spec.get("teacher_layers")

    import torch

    def kd_fit(cached: bool, epochs: int) -> float:
        model = copy.deepcopy(student)
        with kd_training(kd_loss, dc.intermediate, teacher, model, layers) as kd:
            signal = replace(kd.signal(dc), cache=cached)
            r = fit(model, data.train, data.val, replace(schedule, epochs=epochs), kd.loss, teacher=signal, quiet=True)
        return r.seconds_per_step

    def alone(epochs: int) -> float:
        r = fit(copy.deepcopy(student), labelled(data.train), data.val, replace(schedule, epochs=epochs), hard,
                quiet=True)
        return r.seconds_per_step

    with kd_training(kd_loss, dc.intermediate, teacher, copy.deepcopy(student), layers) as kd:
        hidden = kd.signal(dc).hidden  # what the cache holds besides the outputs
        xt = torch.from_numpy(data.train.x)
        build(teacher, xt[:64], hidden=hidden)  # warm-up
        t0 = time.perf_counter()
        build(teacher, xt, hidden=hidden)
        cache_once = time.perf_counter() - t0

    variants = {"KD, teacher live": lambda e: kd_fit(False, e), "KD, teacher cached": lambda e: kd_fit(True, e)}
    if hard is not None:
        variants = {"student alone": alone, **variants}
    for run in variants.values():  # warm-up
        run(1)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            samples[name].append(run(args.epochs))
    runs = {name: statistics.median(v) for name, v in samples.items()}
    full = -(-len(data.train) // cfg.data.batch_size) * dc.epochs  # a whole distill run's KD steps
    info = machine_info()
    print(f"\n{info['cpu']}, SIMD: {', '.join(info['simd']) or 'none listed'}; torch threads {torch.get_num_threads()}")
    print(f"{len(data.train)} training samples ({len(labelled(data.train))} labelled), batch {cfg.data.batch_size}, "
          f"{args.epochs} epoch(s) x {args.rounds} rounds; median of rounds (all rounds); cached: outputs"
          f"{f' and hidden states of teacher layers {list(hidden)}' if hidden else ''}")
    for name, sec in runs.items():
        print(f"{name:20s} {sec * 1000:9.3f} ms/step  ({', '.join(f'{v * 1000:.3f}' for v in samples[name])})")
    print(f"teacher cache for the whole training split, once: {cache_once * 1000:.1f} ms "
          f"({cache_once / full * 1000:.3f} ms per step over the config's {dc.epochs} epochs)")
    live, cached = runs["KD, teacher live"], runs["KD, teacher cached"]
    print(f"\nKD cached / KD live: {cached / live:.2f}x ({(cached + cache_once / full) / live:.2f}x with the one-time "
          f"cache cost spread over the config's {dc.epochs} epochs)")
    if hard is not None:
        base = runs["student alone"]
        print(f"KD live / student alone:   {live / base:.2f}x")
        print(f"KD cached / student alone: {cached / base:.2f}x ({(cached + cache_once / full) / base:.2f}x with the "
              f"one-time cache cost)")


if __name__ == "__main__":
    main()

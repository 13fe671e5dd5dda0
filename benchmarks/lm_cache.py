"""Sparse teacher caches for LM distillation vs KD with the teacher live: storage per token,
time per step and the student's perplexity, side by side in one run (same teacher, same student
initialisation, same batches). Prints the ratios last.

    python benchmarks/lm_cache.py configs/causal-lm.yaml [--k 32] [--set distill.epochs=3]
"""

from __future__ import annotations

import copy
import time

from common import config_parser, load

from kdpipe.evaluation.scoring import evaluate, torch_predictor
from kdpipe.training.loop import Schedule, TeacherSignal, fit, seed_everything


def main() -> None:
    ap = config_parser()
    ap.add_argument("--k", type=int, default=32, help="entries a token for topk / sampled")
    args = ap.parse_args()
    cfg, task, data = load(args)
    dc, tc = cfg.distill, cfg.teacher.train
    hard, kd = task.losses(cfg)
    common = dict(quiet=True, metric=task.metric)

    seed_everything(cfg.seed)
    teacher, _ = task.build("teacher", cfg, data)
    t0 = time.perf_counter()
    fit(
        teacher,
        data.train,
        data.val,
        Schedule(
            epochs=tc.epochs,
            lr=tc.lr,
            weight_decay=tc.weight_decay,
            warmup=tc.warmup,
            batch_size=cfg.data.batch_size,
            seed=cfg.seed,
        ),
        hard,
        **common,
    )
    print(f"teacher trained in {time.perf_counter() - t0:.0f} s: val {task.metric.name} "
          f"{evaluate(torch_predictor(teacher), data.val, task.metric):.2f}")
    seed_everything(cfg.seed + 1)
    init, _ = task.build("student", cfg, data, teacher)
    schedule = Schedule(epochs=dc.epochs, lr=dc.lr, weight_decay=dc.weight_decay, warmup=dc.warmup,
                        batch_size=cfg.data.batch_size, seed=cfg.seed + 2)
    t = dc.temperature

    tokens = data.train.x.size
    vocab = len(data.tokenizer)
    runs = {
        "no KD (baseline)": (hard, None),
        "KD, teacher live": (kd, TeacherSignal(teacher, cache=False)),
        "KD, dense cache": (kd, TeacherSignal(teacher, cache_format="dense", temperature=t)),
        f"KD, top-{args.k} cache": (kd, TeacherSignal(teacher, cache_format="topk", cache_k=args.k, temperature=t)),
        f"KD, sampled-{args.k} cache": (
            kd,
            TeacherSignal(teacher, cache_format="sampled", cache_k=args.k, temperature=t),
        ),
    }
    results = {}
    for name, (loss, signal) in runs.items():
        student = copy.deepcopy(init)
        seed_everything(cfg.seed + 2)  # the same dropout draws in every run: only the teacher signal differs
        t0 = time.perf_counter()
        r = fit(student, data.train, data.val, schedule, loss, teacher=signal, **common)
        wall = time.perf_counter() - t0
        predict = torch_predictor(student)
        results[name] = {
            "val": evaluate(predict, data.val, task.metric),
            "test": evaluate(predict, data.test, task.metric),
            "step_ms": r.seconds_per_step * 1000,
            "wall_s": wall,
            "bytes_per_token": r.teacher_cache.get("bytes", 0) / tokens if r.teacher_cache else None,
            "cache_s": r.teacher_cache.get("seconds"),
        }
        print(f"{name:24s} val {results[name]['val']:8.2f}  test {results[name]['test']:8.2f}  "
              f"{results[name]['step_ms']:7.1f} ms/step  wall {wall:6.1f} s"
              + (f"  cache {results[name]['bytes_per_token']:.0f} B/token, built in {results[name]['cache_s']:.1f} s"
                 if results[name]["bytes_per_token"] else ""))

    live = results["KD, teacher live"]
    base = results["no KD (baseline)"]
    print(f"\n{len(data.train)} training blocks of {cfg.data.sequence_length} tokens ({tokens} tokens), vocabulary "
          f"{vocab}, {dc.epochs} epochs, batch {cfg.data.batch_size}, T={dc.temperature}, alpha={dc.alpha}")
    print(f"dense logits would take {vocab * 4} B/token ({vocab * 4 * tokens / 2**30:.2f} GiB for this split)")
    for name in (f"KD, top-{args.k} cache", f"KD, sampled-{args.k} cache"):
        r = results[name]
        print(f"{name}: storage {r['bytes_per_token']:.0f} B/token = {vocab * 4 / r['bytes_per_token']:.0f}x less than "
              f"dense; test {task.metric.name} {r['test']:.2f} vs live KD {live['test']:.2f} "
              f"(no KD {base['test']:.2f}); time/step {r['step_ms'] / live['step_ms']:.2f}x of live KD, "
              f"{r['step_ms'] / base['step_ms']:.2f}x of no KD")
    dense = results["KD, dense cache"]
    print(f"KD, dense cache: test {dense['test']:.2f}; time/step {dense['step_ms'] / base['step_ms']:.2f}x of no KD"
          + ("" if dense["bytes_per_token"] else " (did not fit the 1 GiB budget: ran live)"))
    print(f"KD, teacher live: time/step {live['step_ms'] / base['step_ms']:.2f}x of no KD")


if __name__ == "__main__":
    main()

"""Does KD beat training the small model alone? Measured over seeds, with the spread.

For each seed: train the teacher once (as `kdpipe distill` does), then for each student size train
the baseline (hard labels) and the KD student for each (temperature, alpha), same init, same budget.
Prints mean ± std of validation and test accuracy, and the KD gain over the baseline, last.

    python benchmarks/kd_vs_baseline.py configs/mnist-mlp.yaml --seeds 0 1 2
    python benchmarks/kd_vs_baseline.py configs/mnist-mlp.yaml --hidden 32 --hidden 64 --kd 4,0.9 --kd 2,0.5
"""

from __future__ import annotations

import copy
import statistics
import time

from common import config_parser

from kdpipe.config.load import load_config
from kdpipe.data.splits import load_splits
from kdpipe.evaluation.scoring import evaluate, torch_predictor
from kdpipe.metrics import ACCURACY
from kdpipe.models.factory import build_model
from kdpipe.training.kd_loss import hard_loss, kd_loss_fn
from kdpipe.training.loop import Schedule, TeacherSignal, fit, seed_everything


def main() -> None:
    ap = config_parser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--hidden", action="append", help="student MLP hidden sizes, e.g. 32 or 64,64 (repeatable)")
    ap.add_argument("--kd", action="append", help="temperature,alpha (repeatable); default: the config's")
    args = ap.parse_args()
    base = load_config(args.config, args.overrides)
    if base.data.label_fraction < 1:  # this script trains on every label; the pipeline's few-label runs are a sweep
        raise SystemExit(f"{args.config}: data.label_fraction is {base.data.label_fraction}; this script compares "
                         "students trained on every label: use `kdpipe sweep` for few-label settings, or "
                         "--set data.label_fraction=1")
    students = [[int(h) for h in s.split(",")] for s in (args.hidden or [])] or [
        base.student.params.get("hidden", [32])
    ]
    settings = [tuple(float(v) for v in s.split(",")) for s in (args.kd or [])] or [
        (base.distill.temperature, base.distill.alpha)
    ]

    results: dict[str, list[tuple[float, float]]] = {}
    t_start = time.perf_counter()
    for seed in args.seeds:
        cfg = base.model_copy(deep=True)
        cfg.seed = seed
        splits = load_splits(cfg)
        seed_everything(seed)
        teacher = build_model(cfg.teacher.model, cfg.teacher.params, splits.input_shape, splits.num_classes, "teacher")
        tc = cfg.teacher.train
        fit(teacher, splits.train, splits.val, Schedule(epochs=tc.epochs, lr=tc.lr, weight_decay=tc.weight_decay,
                                                        batch_size=cfg.data.batch_size, seed=seed),
            hard_loss, desc=f"teacher s{seed}", quiet=True)
        _record(results, "teacher", teacher, splits)
        dc = cfg.distill
        for hidden in students:
            seed_everything(seed + 1)
            init = build_model("builtin:mlp", {"hidden": hidden}, splits.input_shape, splits.num_classes, "student")
            schedule = Schedule(epochs=dc.epochs, lr=dc.lr, weight_decay=dc.weight_decay,
                                batch_size=cfg.data.batch_size, seed=seed + 2)
            m = copy.deepcopy(init)
            fit(m, splits.train, splits.val, schedule, hard_loss, quiet=True)
            _record(results, f"mlp{hidden} baseline", m, splits)
            for t, a in settings:
                m = copy.deepcopy(init)
                fit(m, splits.train, splits.val, schedule, kd_loss_fn(t, a), teacher=TeacherSignal(teacher), quiet=True)
                _record(results, f"mlp{hidden} KD T={t:g} a={a:g}", m, splits)
        print(f"seed {seed} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    print(f"\n{len(args.seeds)} seeds {args.seeds}; accuracy % as mean ± std (val | test)")
    for name, vals in results.items():
        v, t = [x[0] for x in vals], [x[1] for x in vals]
        print(f"{name:32s} val {_ms(v)} | test {_ms(t)}")
    print("\nKD gain over the baseline (test points, per seed; mean ± std):")
    for hidden in students:
        base_t = [x[1] for x in results[f"mlp{hidden} baseline"]]
        for t, a in settings:
            kd_t = [x[1] for x in results[f"mlp{hidden} KD T={t:g} a={a:g}"]]
            gains = [k - b for k, b in zip(kd_t, base_t)]
            wins = sum(g > 0 for g in gains)
            print(f"mlp{hidden} T={t:g} a={a:g}: gain {_ms(gains, sign=True)}  (KD ahead on {wins}/{len(gains)} seeds; "
                  f"per seed {', '.join(f'{g:+.1f}' for g in gains)})")


def _record(results, name, model, splits):
    p = torch_predictor(model)
    results.setdefault(name, []).append((evaluate(p, splits.val, ACCURACY), evaluate(p, splits.test, ACCURACY)))


def _ms(xs, sign=False) -> str:
    m = statistics.mean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{m:+.2f} ± {s:.2f}" if sign else f"{m:.2f} ± {s:.2f}"


if __name__ == "__main__":
    main()

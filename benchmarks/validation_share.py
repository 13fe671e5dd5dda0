"""Does a larger validation share serve small data sets better? The bundle is chosen on validation
(paired evidence against the teacher, kdpipe.evaluation.evidence): more validation samples make that choice
firmer, but leave fewer samples to train on. For each validation share (the test share fixed) and
seed, one whole `kdpipe all` run; printed per share, over seeds: the shipped bundle's test metric and
its test drop against the teacher, how often that drop fell outside the paired 95% interval the
choice was made with, and above its upper end (the test contradicting what the choice relied on),
and the interval's half-width.

    python benchmarks/validation_share.py configs/default.yaml --shares 0.1 0.2 0.3 --seeds 0 1 2
    python benchmarks/validation_share.py configs/default.yaml --set data.source=builtin:digits
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from common import config_parser

from kdpipe.config.load import load_config
from kdpipe.pipeline import runner
from kdpipe.progress import set_quiet
from kdpipe.runtime.machine import machine_info
from kdpipe.stages import ORDER


def one_run(config: str, overrides: list[str], val: float, test: float, seed: int, folder: Path) -> dict:
    split = f"[{1 - val - test:.4f}, {val:.4f}, {test:.4f}]"
    cfg = load_config(config, [*overrides, f"data.split={split}", f"seed={seed}", f"output_dir={folder}",
                               "benchmark.providers=[cpu]"])
    runner.run(cfg, ORDER, quiet=True)
    report = json.loads((folder / "report" / "report.json").read_text())
    choice = report["bundle"]["choice"]
    label = report["bundle"]["variant"]
    rows = {r["variant"] if r["format"] != "onnx-fp32" else f"{r['variant']}-fp32": r for r in report["rows"]
            if r["format"] != "torch"}
    bundle, teacher = rows[label], rows["teacher-fp32"]
    claim = next(c for c in choice["candidates"] if c["variant"] == label)
    sign = 1 if report["metric"]["higher_is_better"] else -1
    test_drop = sign * (teacher["metric"]["value"] - bundle["metric"]["value"])
    lo, hi = claim["val_drop_ci"]
    return {
        "bundle": label,
        "test": bundle["metric"]["value"],
        "test_drop": test_drop,
        "val_ci": [lo, hi],
        "outside": not lo <= test_drop <= hi,
        "above": test_drop > hi,
        "val_samples": choice.get("validation_samples"),
        "half_width": (hi - lo) / 2,
        "student_test": rows["student-fp32"]["metric"]["value"],
    }


def main() -> None:
    ap = config_parser()
    ap.add_argument("--shares", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--test", type=float, default=0.2, help="the test share, the same for every run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    set_quiet(True)
    m = machine_info()
    print(f"# {args.config} {' '.join('--set ' + o for o in args.overrides)}; {m['cpu']}, SIMD {', '.join(m['simd'])}")
    print("| validation share | val samples | bundle test (mean) | KD student fp32 test | bundle's test drop vs "
          "teacher "
          "| test drop outside the val interval (either side) | above its upper end | paired half-width | bundles "
          "shipped |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    t0 = time.perf_counter()
    for share in args.shares:
        runs = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(one_run(args.config, args.overrides, share, args.test, seed, Path(tmp) / "run"))
        mean = lambda k: statistics.mean(r[k] for r in runs)  # noqa: E731
        print(f"| {share:g} | {runs[0]['val_samples']} | {mean('test'):.2f} | {mean('student_test'):.2f} | "
              f"{mean('test_drop'):+.2f} | {sum(r['outside'] for r in runs)}/{len(runs)} | "
              f"{sum(r['above'] for r in runs)}/{len(runs)} | "
              f"{mean('half_width'):.2f} | {', '.join(r['bundle'] for r in runs)} |", flush=True)
    print(f"# {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

"""The deployed student against what users start from, measured side by side in one process:
teacher fp32 in PyTorch eager, teacher fp32 ONNX, student fp32 ONNX and the bundled int8 student,
all on the CPU with the same thread count, on real test inputs. Also checks the harness: kdpipe's
latency figure for a model against a bare onnxruntime loop with the same session options.

    python benchmarks/student_vs_teacher.py configs/default.yaml      # after `kdpipe all` on it
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from common import config_parser

from kdpipe.config.load import load_config
from kdpipe.data.splits import load_splits
from kdpipe.models.checkpoint import load_model
from kdpipe.runtime.sessions import make_session, timed_call
from kdpipe.runtime.timing import measure, measure_rounds, torch_call


def main() -> None:
    ap = config_parser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    run = cfg.run_dir()
    manifest = json.loads((run / "manifest.json").read_text())
    bundle = json.loads((run / "export" / "bundle" / "kdpipe.json").read_text())
    rows = {(r["variant"], r["format"]): r for s in ("distill", "prune", "quantize", "export")
            for r in manifest["stages"][s]["outputs"]["variants"]}
    x = load_splits(cfg).test.x
    torch.set_num_threads(args.threads)
    timing = dict(warmup=50, min_seconds=args.seconds, min_runs=200)

    teacher, _ = load_model(run / "distill" / "teacher.safetensors", "teacher")
    source = manifest["stages"]["quantize"]["outputs"]["source"]
    calls = {}
    for batch in (1, 64):
        xb = np.ascontiguousarray(x[:batch])
        calls[("teacher", "torch eager", batch)] = (torch_call(teacher, torch.from_numpy(xb)), batch)
        for label, path in [("teacher", run / "export" / "teacher.onnx"), (source, run / "export" / f"{source}.onnx"),
                            (bundle["variant"], run / "export" / "bundle" / "model.onnx")]:
            sess, _ = make_session(path, "cpu", args.threads)
            calls[(label, "onnxruntime", batch)] = (timed_call(sess, {sess.get_inputs()[0].name: xb}, "cpu"), batch)
    results = measure_rounds(calls, **timing)  # side by side, in rounds

    teacher_acc = rows[("teacher", "torch")]["metric"]["test"]
    print(f"\ntest accuracy: teacher {teacher_acc:.2f}%, bundle ({bundle['variant']}) {bundle['metric']['test']:.2f}% "
          f"(drop {teacher_acc - bundle['metric']['test']:.2f} points); {args.threads} thread(s)")
    for (name, rt, b), m in results.items():
        print(f"  {name:32s} {rt:12s} batch {b:3d}: p50 {m['p50_ms']:8.4f} ms, {m['throughput_per_s']:12.0f} samples/s")
    honesty(run / "export" / "bundle" / "model.onnx", x, args.threads)
    t1 = results[("teacher", "torch eager", 1)]["p50_ms"]
    t64 = results[("teacher", "torch eager", 64)]["throughput_per_s"]
    o1 = results[("teacher", "onnxruntime", 1)]["p50_ms"]
    o64 = results[("teacher", "onnxruntime", 64)]["throughput_per_s"]
    s1 = results[(bundle["variant"], "onnxruntime", 1)]["p50_ms"]
    s64 = results[(bundle["variant"], "onnxruntime", 64)]["throughput_per_s"]
    print(f"\nbundled student vs teacher in PyTorch eager: {t1 / s1:.1f}x faster at batch 1 (p50), "
          f"{s64 / t64:.1f}x the throughput at batch 64")
    print(f"bundled student vs teacher fp32 ONNX:        {o1 / s1:.1f}x faster at batch 1 (p50), "
          f"{s64 / o64:.1f}x the throughput at batch 64")


def honesty(path, x, threads: int, calls: int = 3000) -> None:
    """kdpipe's measure() against a bare loop over the same session: the harness must not add time."""
    sess, _ = make_session(path, "cpu", threads)
    xb = np.ascontiguousarray(x[:1])
    name = sess.get_inputs()[0].name
    for _ in range(200):
        sess.run(None, {name: xb})
    ours, bare = [], []
    for _ in range(5):  # interleaved rounds, so drift in machine speed hits both alike
        ours.append(
            measure(timed_call(sess, {name: xb}, "cpu"), warmup=0, min_seconds=0.0, min_runs=calls, batch=1)["p50_ms"]
        )
        t = []
        for _ in range(calls):
            t0 = time.perf_counter()
            sess.run(None, {name: xb})
            t.append(time.perf_counter() - t0)
        bare.append(float(np.median(t)) * 1000)
    a, b = float(np.median(ours)), float(np.median(bare))
    print(f"\nharness check (bundle, batch 1): kdpipe p50 {a:.4f} ms, bare onnxruntime loop p50 {b:.4f} ms, "
          f"ratio {a / b:.3f} (target within 5%)")


if __name__ == "__main__":
    main()

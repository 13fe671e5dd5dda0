"""Why the benchmark times models side by side in rounds: the speed ratio of two models of a run
(the teacher's fp32 ONNX and the int8 student), measured again and again, one model after the
other (as kdpipe did before benchmark.rounds) and in rounds, on a quiet core and on a core that a
second process loads on and off (as a shared machine does). A method that is fair gives the same
ratio both ways on a quiet core and keeps it under the load.

    python benchmarks/timing_rounds.py artifacts/embedding            # any finished run
    python benchmarks/timing_rounds.py artifacts/embedding --trials 10 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import numpy as np

from kdpipe.runtime.machine import machine_info
from kdpipe.runtime.sessions import make_session, timed_call
from kdpipe.runtime.timing import measure, measure_rounds
from kdpipe.tasks import get_task


def _load(core: int, period: float) -> None:
    """Busy on `core` for one period, idle for the next, until killed."""
    os.sched_setaffinity(0, {core})
    while True:
        if int(time.time() / period) % 2 == 0:
            end = time.perf_counter() + 0.01
            while time.perf_counter() < end:
                pass
        else:
            time.sleep(0.01)


def _ratio_pairs(calls: dict, trials: int, seconds: float) -> tuple[list[float], list[float]]:
    """(ratios one after the other, ratios in rounds): teacher p50 / student p50, `trials` times each."""
    one, rounds = [], []
    for _ in range(trials):
        seq = {k: measure(c, warmup=5, min_seconds=seconds, min_runs=20, batch=b) for k, (c, b) in calls.items()}
        one.append(seq["teacher"]["p50_ms"] / seq["student"]["p50_ms"])
        r = measure_rounds(calls, warmup=5, min_seconds=seconds, min_runs=20, rounds=5)
        rounds.append(r["teacher"]["p50_ms"] / r["student"]["p50_ms"])
    return one, rounds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per model and trial")
    ap.add_argument("--period", type=float, default=0.7, help="seconds the load is on, then off")
    args = ap.parse_args()
    manifest = json.loads((args.run / "manifest.json").read_text())
    task = get_task(manifest["config"].get("task", "classification"))
    bench = json.loads((args.run / "benchmark" / "latency.json").read_text())
    shape = bench["input_shapes"]["1"]  # batch 1 as the benchmark stage timed it; dense models cost the same on any ids
    rng = np.random.default_rng(0)
    if bench.get("padded_texts"):
        x = np.stack([rng.integers(5, 100, shape[-1]), np.ones(shape[-1])])[None].astype(np.int64)
    else:
        x = rng.normal(size=shape).astype(np.float32)
    int8 = next(r for r in manifest["stages"]["quantize"]["outputs"]["variants"]
                if r["format"] == "onnx-int8" and r["variant"].startswith("student"))
    paths = {"teacher": args.run / "export" / "teacher.onnx", "student": args.run / int8["path"]}
    os.sched_setaffinity(0, {0})  # one core, shared with the load below
    calls = {}
    for name, path in paths.items():
        sess, _ = make_session(path, "cpu", 1)
        calls[name] = (timed_call(sess, task.feeds([i.name for i in sess.get_inputs()], x), "cpu"), 1)
    info = machine_info()
    print(f"{args.run.name}: teacher fp32 ONNX / {int8['variant']}, batch 1, 1 thread on core 0, {args.trials} "
          f"trials of {args.seconds:g} s a model; {info['cpu']}, SIMD: {', '.join(info['simd'])}")
    print("| core 0 | method | median ratio | min - max | spread (max/min) |\n|---|---|---:|---:|---:|")
    for label, loaded in (("quiet", False), (f"loaded {args.period:g} s on / off", True)):
        load = mp.Process(target=_load, args=(0, args.period), daemon=True) if loaded else None
        if load:
            load.start()
        try:
            one, rounds = _ratio_pairs(calls, args.trials, args.seconds)
        finally:
            if load:
                load.kill()
        for method, ratios in (("one after the other", one), ("5 rounds", rounds)):
            print(f"| {label} | {method} | {statistics.median(ratios):.2f} | {min(ratios):.2f} - {max(ratios):.2f} "
                  f"| {max(ratios) / min(ratios):.2f} |")


if __name__ == "__main__":
    main()

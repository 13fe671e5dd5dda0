"""Latency measurement shared by every runtime: warm up, then time single calls until enough are in."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def measure(call: Callable[[], object], warmup: int, min_seconds: float, min_runs: int, batch: int) -> dict:
    for _ in range(warmup):
        call()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1000.0
    return {
        "batch": batch,
        "runs": len(times),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": float(batch / (ms.mean() / 1000.0)),
    }

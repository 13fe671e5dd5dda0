"""Latency measurement shared by every runtime: warm up, then time single calls until enough are in.

Models that are compared are timed side by side, in rounds (`measure_rounds`): a load that comes
and goes on the machine (another process, a turbo clock that drops as the chip warms) then falls on
every model alike instead of on whichever happened to run at that moment. Timed one after another,
the same model measured 20-40% apart within an hour on a shared 2-core machine.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Hashable

import numpy as np


def torch_call(model, x) -> Callable[[], None]:
    """The call timed for a PyTorch model: one forward pass in inference mode, on CUDA until its
    kernels are done (they run asynchronously)."""
    import torch

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def call():
        with torch.inference_mode():
            model(x)
        sync()

    return call


def measure(call: Callable[[], object], warmup: int, min_seconds: float, min_runs: int, batch: int) -> dict:
    """One call timed alone."""
    return measure_rounds({0: (call, batch)}, warmup, min_seconds, min_runs, rounds=1)[0]


def measure_rounds(calls: dict[Hashable, tuple[Callable[[], object], int]], warmup: int, min_seconds: float,
                   min_runs: int, rounds: int = 5) -> dict[Hashable, dict]:
    """Times every (call, batch) of `calls` for min_seconds and min_runs in all, in `rounds` rounds:
    each round runs each call for its share, in an order rotated every round, and begins each share
    with one untimed call (the previous model has just had the caches). Before that, each call is warmed
    up `warmup` times, or fewer once the warm-up has taken a round's share of min_seconds (at least
    once): a slow call (a batch of 32 long texts) is warm after one run, and ten would cost more than
    timing it. Returns stats per key."""
    keys = list(calls)
    for key in keys:
        start = time.perf_counter()
        for _ in range(warmup):
            calls[key][0]()
            if time.perf_counter() - start >= min_seconds / rounds:
                break
    times: dict[Hashable, list[float]] = {key: [] for key in keys}
    share_s, share_n = min_seconds / rounds, math.ceil(min_runs / rounds)
    for r in range(rounds):
        shift = r % max(1, len(keys))
        for key in keys[shift:] + keys[:shift]:
            call, got = calls[key][0], times[key]
            if rounds > 1:
                call()
            start, n = time.perf_counter(), 0
            while n < share_n or time.perf_counter() - start < share_s:
                t0 = time.perf_counter()
                call()
                got.append(time.perf_counter() - t0)
                n += 1
    return {key: _stats(times[key], calls[key][1], rounds) for key in keys}


def _stats(times: list[float], batch: int, rounds: int) -> dict:
    ms = np.asarray(times) * 1000.0
    return {
        "batch": batch,
        "runs": len(times),
        "rounds": rounds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "throughput_per_s": float(batch / (ms.mean() / 1000.0)),
    }

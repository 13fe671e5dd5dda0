"""benchmark: latency p50/p90/p99 and throughput of every ONNX variant per execution provider and batch
size, on real test inputs, plus the teacher in PyTorch eager as the reference users start from.

A provider this onnxruntime build lacks is recorded as not available (never as zeros); a CUDA
session that silently fell back to the CPU is recorded as a fallback, not as CUDA.
"""

from __future__ import annotations

import os
import platform

import numpy as np
import torch

from kdpipe.pipeline.artifacts import atomic_write_json
from kdpipe.progress import progress, say
from kdpipe.runtime.sessions import make_session, node_placement, provider_status, timed_call
from kdpipe.runtime.timing import measure

NAME = "benchmark"
REQUIRES = ("distill", "prune", "quantize", "export")
SECTIONS = ("benchmark",)


def run(ctx) -> dict:
    bc, splits, task = ctx.cfg.benchmark, ctx.splits, ctx.task
    variants = ctx.upstream("export")["variants"] + ctx.upstream("quantize")["variants"]
    inputs = {b: _batch(splits.test.x, b) for b in bc.batch_sizes}
    timing = dict(warmup=bc.warmup, min_seconds=bc.min_seconds, min_runs=bc.min_runs)
    results = []
    jobs = [(row, p) for row in variants for p in bc.providers]
    for row, provider in progress(jobs, desc="benchmark", quiet=ctx.quiet, unit="run"):
        entry = {"variant": row["variant"], "format": row["format"], "runtime": "onnxruntime", "provider": provider}
        sess, info = make_session(ctx.file(row["path"]), provider, bc.threads)
        entry.update(available=sess is not None, actual_provider=info.provider, fallback=info.fallback,
                     note=info.reason, threads=bc.threads or f"default ({_default_threads()})")
        if sess is not None and not info.fallback:
            names = [i.name for i in sess.get_inputs()]
            entry["batches"] = {str(b): measure(timed_call(sess, task.feeds(names, x), provider), batch=b, **timing)
                                for b, x in inputs.items()}
            if bc.sequence_lengths:  # text models: the cost of longer inputs (same texts, cut to length)
                entry["sequence_lengths"] = {
                    str(n): {str(b): measure(timed_call(sess, task.feeds(names, np.ascontiguousarray(x[..., :n])),
                                                        provider), batch=b, **timing) for b, x in inputs.items()}
                    for n in bc.sequence_lengths}
            entry["placement"] = node_placement(ctx.file(row["path"]), provider, task.feeds(names, inputs[min(inputs)]),
                                                bc.threads)
        results.append(entry)
    if bc.torch_teacher:
        results += _torch_teacher(ctx, inputs, timing)
    for r in results:
        if r.get("batches"):
            b1 = r["batches"].get("1") or next(iter(r["batches"].values()))
            say(f"[benchmark] {r['variant']} {r['format']} on {r['runtime']}/{r['provider']}: "
                f"p50 {b1['p50_ms']:.3f} ms at batch {b1['batch']}")
    outputs = {"machine": machine_info(), "providers": {p: _status(p) for p in bc.providers}, "results": results}
    atomic_write_json(ctx.out / "latency.json", outputs)  # for users; downstream stages read the manifest
    return outputs


def _torch_teacher(ctx, inputs: dict, timing: dict) -> list[dict]:
    """The teacher in PyTorch eager, on the CPU and, when asked for and present, on the GPU."""
    row = next(r for r in ctx.upstream("distill")["variants"] if r["variant"] == "teacher")
    model, _ = ctx.task.load(ctx.file(row["path"]), "distill/teacher")
    out = []
    for provider in ctx.cfg.benchmark.providers:
        entry = {"variant": "teacher", "format": "torch", "runtime": "torch-eager", "provider": provider,
                 "fallback": False, "note": "", "threads": torch.get_num_threads()}
        if provider == "cuda" and not torch.cuda.is_available():
            out.append({**entry, "available": False, "note": "not available: torch sees no CUDA device"})
            continue
        device = torch.device(provider)
        model.to(device).eval()
        sync = torch.cuda.synchronize if provider == "cuda" else (lambda: None)

        def call(x):
            with torch.inference_mode():
                model(x)
            sync()  # CUDA kernels run asynchronously: time until they are done

        batches = {}
        for b, x in inputs.items():
            t = torch.from_numpy(x).to(device)
            batches[str(b)] = measure(lambda: call(t), batch=b, **timing)
        out.append({**entry, "available": True, "actual_provider": provider, "batches": batches})
    return out


def _batch(x: np.ndarray, b: int) -> np.ndarray:
    reps = -(-b // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:b])


def _status(provider: str) -> dict:
    info = provider_status(provider)
    return {"available": info.available, "reason": info.reason}


def _default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_info() -> dict:
    """CPU model and the SIMD features that decide which int8 kernels onnxruntime can use."""
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    info = {"cpu": model, "cores": _default_threads(), "simd": simd, "system": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_runtime"] = torch.version.cuda
        info["gpu_driver"] = _nvidia_driver()
    return info


def _nvidia_driver() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None

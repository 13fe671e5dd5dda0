"""benchmark: latency p50/p90/p99 and throughput of every ONNX variant per execution provider and batch
size, on real test inputs, plus the teacher in PyTorch eager as the reference users start from.

A provider this onnxruntime build lacks is recorded as not available (never as zeros); a CUDA
session that silently fell back to the CPU is recorded as a fallback, not as CUDA.
"""

from __future__ import annotations

import numpy as np
import torch

from kdpipe.data.splits import text_lengths, trim_padding
from kdpipe.pipeline.artifacts import atomic_write_json
from kdpipe.progress import progress, say
from kdpipe.runtime.machine import default_threads, machine_info
from kdpipe.runtime.sessions import make_session, node_placement, provider_status, timed_call
from kdpipe.runtime.timing import measure

NAME = "benchmark"
REQUIRES = ("distill", "prune", "quantize", "export")
SECTIONS = ("benchmark",)


def run(ctx) -> dict:
    bc, splits, task = ctx.cfg.benchmark, ctx.splits, ctx.task
    variants = ctx.upstream("export")["variants"] + ctx.upstream("quantize")["variants"]
    # Every runtime gets the same tensors, texts cut after their longest one as an app feeds them (the
    # PyTorch wrapper would cut them itself; onnxruntime computes whatever columns it is given).
    padded = {b: _batch(splits.test.x, b) for b in bc.batch_sizes}
    inputs = {b: trim_padding(x) for b, x in padded.items()}
    timing = dict(warmup=bc.warmup, min_seconds=bc.min_seconds, min_runs=bc.min_runs)
    # One thread count for every runtime, onnxruntime and PyTorch alike: a teacher timed with more
    # (or fewer) threads than the students would make every "x faster" wrong.
    threads = bc.threads or default_threads()
    results = []
    jobs = [(row, p) for row in variants for p in bc.providers]
    for row, provider in progress(jobs, desc="benchmark", quiet=ctx.quiet, unit="run"):
        entry = {"variant": row["variant"], "format": row["format"], "runtime": "onnxruntime", "provider": provider}
        sess, info = make_session(ctx.file(row["path"]), provider, threads)
        entry.update(available=sess is not None, actual_provider=info.provider, fallback=info.fallback,
                     note=info.reason, threads=threads)
        if sess is not None and not info.fallback:
            names = [i.name for i in sess.get_inputs()]
            entry["batches"] = {str(b): measure(timed_call(sess, task.feeds(names, x), provider), batch=b, **timing)
                                for b, x in inputs.items()}
            if bc.sequence_lengths:  # text models: the cost of longer inputs (same texts, cut to length)
                entry["sequence_lengths"] = {
                    str(n): {str(b): measure(timed_call(sess, task.feeds(names, np.ascontiguousarray(x[..., :n])),
                                                        provider), batch=b, **timing) for b, x in padded.items()}
                    for n in bc.sequence_lengths}
            entry["placement"] = node_placement(ctx.file(row["path"]), provider, task.feeds(names, inputs[min(inputs)]),
                                                threads)
        results.append(entry)
    if bc.torch_teacher:
        results += _torch_teacher(ctx, inputs, timing, threads)
    for r in results:
        if r.get("batches"):
            b1 = r["batches"].get("1") or next(iter(r["batches"].values()))
            say(f"[benchmark] {r['variant']} {r['format']} on {r['runtime']}/{r['provider']}: "
                f"p50 {b1['p50_ms']:.3f} ms at batch {b1['batch']}")
    outputs = {"machine": machine_info(), "providers": {p: _status(p) for p in bc.providers}, "results": results,
               "input_shapes": {str(b): list(x.shape) for b, x in inputs.items()},
               "padded_texts": text_lengths(splits.test.x) is not None}
    atomic_write_json(ctx.out / "latency.json", outputs)  # for users; downstream stages read the manifest
    return outputs


def _torch_teacher(ctx, inputs: dict, timing: dict, threads: int) -> list[dict]:
    """The teacher in PyTorch eager, on the CPU and, when asked for and present, on the GPU, with the
    onnxruntime sessions' thread count."""
    row = next(r for r in ctx.upstream("distill")["variants"] if r["variant"] == "teacher")
    model, _ = ctx.task.load(ctx.file(row["path"]), "distill/teacher")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _time_torch(ctx, model, inputs, timing)
    finally:
        torch.set_num_threads(before)


def _time_torch(ctx, model, inputs: dict, timing: dict) -> list[dict]:
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

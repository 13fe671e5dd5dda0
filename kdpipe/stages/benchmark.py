"""benchmark: latency p50/p90/p99 and throughput of every ONNX variant per execution provider and batch
size, on real test inputs, plus the teacher in PyTorch eager as the reference users start from.

A provider this onnxruntime build lacks is recorded as not available (never as zeros); a CUDA
session that silently fell back to the CPU is recorded as a fallback, not as CUDA.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from kdpipe.bundle.generation_timing import onnx_generation, time_generation, torch_generation
from kdpipe.data.splits import text_lengths, trim_padding
from kdpipe.io import atomic_write_json
from kdpipe.progress import progress, say
from kdpipe.runtime.machine import machine_info
from kdpipe.runtime.sessions import input_names, make_session, node_placement, provider_status, timed_call
from kdpipe.runtime.timing import measure_rounds, torch_call

NAME = "benchmark"
REQUIRES = ("distill", "prune", "quantize", "export")
SECTIONS = ("benchmark",)
VERSION = 2  # causal LMs: generation timing (first token, decode tokens/s with and without the KV cache)


def run(ctx) -> dict:
    bc, splits, task = ctx.cfg.benchmark, ctx.splits, ctx.task
    variants = ctx.upstream("export")["variants"] + ctx.upstream("quantize")["variants"]
    # Every runtime gets the same tensors, texts cut after their longest one as an app feeds them (the
    # PyTorch wrapper would cut them itself; onnxruntime computes whatever columns it is given).
    padded = {b: _batch(splits.test.x, b) for b in bc.batch_sizes}
    inputs = {b: trim_padding(x) for b, x in padded.items()}
    # One thread count for every runtime, onnxruntime and PyTorch alike: a teacher timed with more
    # (or fewer) threads than the students would make every "x faster" wrong.
    threads = bc.thread_count()
    # Sessions first, timing after: every model is then timed side by side in rounds (timing.py),
    # so a load that comes and goes on the machine falls on all of them alike.
    results, calls, same = [], {}, {}
    jobs = [(row, p) for row in variants for p in bc.providers]
    for row, provider in progress(jobs, desc="benchmark: sessions", quiet=ctx.quiet, unit="model"):
        entry = {"variant": row["variant"], "format": row["format"], "runtime": "onnxruntime", "provider": provider}
        sess, info = make_session(ctx.file(row["path"]), provider, threads)
        entry.update(available=sess is not None, actual_provider=info.provider, fallback=info.fallback,
                     note=info.reason, threads=threads)
        if sess is not None and not info.fallback:
            names = input_names(sess)
            for b, x in inputs.items():
                calls[(len(results), "batches", str(b))] = (timed_call(sess, task.feeds(names, x), provider), b)
            for n in bc.sequence_lengths or ():  # text models: the cost of longer inputs (same texts, cut to length)
                for b, x in padded.items():
                    cut = np.ascontiguousarray(x[..., :n])
                    key = (len(results), "sequence_lengths", str(n), str(b))
                    if np.array_equal(cut, inputs[b]):  # the batch above already is this tensor: timed once
                        same[key] = (len(results), "batches", str(b))
                        continue
                    calls[key] = (timed_call(sess, task.feeds(names, cut), provider), b)
            entry["placement"] = node_placement(ctx.file(row["path"]), provider, task.feeds(names, inputs[min(inputs)]),
                                                threads)
        results.append(entry)
    teacher = _teacher(ctx) if bc.torch_teacher or task.generates else None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if bc.torch_teacher:
            results += _torch_teacher(ctx, teacher, inputs, calls, len(results))
        say(f"[benchmark] timing {len(calls)} model-input pairs side by side, {bc.rounds} rounds, "
            f"{bc.min_seconds:g} s each, {threads} thread(s)")
        timed = measure_rounds(calls, **bc.timing())
    finally:
        torch.set_num_threads(before)
    timed.update({key: dict(timed[src]) for key, src in same.items()})
    for key, stats in timed.items():
        node = results[key[0]]
        for part in key[1:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = stats
    for r in results:
        if r.get("batches"):
            b1 = r["batches"].get("1") or next(iter(r["batches"].values()))
            say(f"[benchmark] {r['variant']} {r['format']} on {r['runtime']}/{r['provider']}: "
                f"p50 {b1['p50_ms']:.3f} ms at batch {b1['batch']}")
    outputs = {"machine": machine_info(), "providers": {p: _status(p) for p in bc.providers}, "results": results,
               "rounds": bc.rounds, "threads": threads,
               "input_shapes": {str(b): list(x.shape) for b, x in inputs.items()},
               "padded_texts": text_lengths(splits.test.x) is not None}
    if task.generates:
        outputs["generation"] = _generation(ctx, variants, teacher)
    atomic_write_json(ctx.out / "latency.json", outputs)  # for users; downstream stages read the manifest
    return outputs


def _teacher(ctx):
    """The teacher in PyTorch (loaded once for the latency and the generation timing)."""
    row = ctx.upstream_row("distill", "teacher")
    return ctx.task.load(ctx.file(row["path"]), "distill/teacher")[0]


def _torch_teacher(ctx, model, inputs: dict, calls: dict, first: int) -> list[dict]:
    """The teacher in PyTorch eager, on the CPU and, when asked for and present, on the GPU; its calls
    join `calls` (keyed from result index `first`) to be timed with the onnxruntime sessions, with
    their thread count (the caller sets torch's)."""
    out = []
    for provider in ctx.cfg.benchmark.providers:
        entry = {"variant": "teacher", "format": "torch", "runtime": "torch-eager", "provider": provider,
                 "fallback": False, "note": "", "threads": torch.get_num_threads()}
        if provider == "cuda" and not torch.cuda.is_available():
            out.append({**entry, "available": False, "note": "not available: torch sees no CUDA device"})
            continue
        device = torch.device(provider)
        on_device = (model if device.type == "cpu" else copy.deepcopy(model).to(device)).eval()  # one copy per device
        for b, x in inputs.items():
            calls[(first + len(out), "batches", str(b))] = (torch_call(on_device, torch.from_numpy(x).to(device)), b)
        out.append({**entry, "available": True, "actual_provider": provider})
    return out


def _generation(ctx, variants: list, teacher) -> dict:
    """Greedy generation at batch 1 on one CPU thread: time to the first token of a test prompt and
    decode tokens per second, with the KV cache and rerunning the prefix, for every ONNX variant and
    the PyTorch teacher (its own cache)."""
    import json

    bc = ctx.cfg.benchmark
    torch_rows = {r["variant"]: r for r in ctx.upstream("distill")["variants"] + ctx.upstream("prune")["variants"]}
    limits = []
    for r in torch_rows.values():
        c = json.loads((ctx.file(r["path"]) / "config.json").read_text())
        limits.append(c.get("n_positions") or c.get("max_position_embeddings") or 10**9)
    prompt = [int(t) for t in ctx.splits.test.x[0][: bc.prompt_tokens]]
    new = min(bc.new_tokens, min(limits) - len(prompt))
    runs, rows = {}, []
    for row in variants:
        sess, _ = make_session(ctx.file(row["path"]), "cpu", 1)
        for cache in (True, False):
            runs[len(rows)] = onnx_generation(sess, prompt, new, cache)
            rows.append({"variant": row["variant"], "format": row["format"], "runtime": "onnxruntime", "cache": cache})
    for cache in (True, False):
        runs[len(rows)] = torch_generation(teacher.hf.eval(), prompt, new, cache)
        rows.append({"variant": "teacher", "format": "torch", "runtime": "torch-eager", "cache": cache})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    say(f"[benchmark] generation: {len(runs)} model-cache pairs, a {len(prompt)}-token prompt and {new} new tokens, "
        f"{bc.rounds} rounds, 1 thread")
    try:
        timed = time_generation(runs, rounds=bc.rounds)
    finally:
        torch.set_num_threads(before)
    for i, stats in timed.items():
        rows[i].update(stats)
    return {"prompt_tokens": len(prompt), "new_tokens": new, "batch": 1, "threads": 1, "rounds": bc.rounds,
            "results": rows}


def _batch(x: np.ndarray, b: int) -> np.ndarray:
    reps = -(-b // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:b])


def _status(provider: str) -> dict:
    info = provider_status(provider)
    return {"available": info.available, "reason": info.reason}

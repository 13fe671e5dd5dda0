"""export: fp32 ONNX of every torch variant (dynamic batch axis), checked against torch on real
validation data, and the deployable bundle (chosen model + kdpipe.json) that plain onnxruntime loads."""

from __future__ import annotations

import os

import numpy as np

from kdpipe.bundle.card_facts import Shipped, card_for_run
from kdpipe.bundle.choice import choose_bundle
from kdpipe.bundle.model_card import write_model_card
from kdpipe.data.splits import trim_padding
from kdpipe.errors import ConfigError
from kdpipe.evaluation.scoring import logits, onnx_predictor, score, torch_predictor
from kdpipe.progress import progress, say
from kdpipe.quantization.plan import planned_variants
from kdpipe.runtime.onnx_convert import set_metadata
from kdpipe.runtime.sessions import input_names, make_session, timed_call
from kdpipe.runtime.timing import measure_rounds
from kdpipe.variants import VariantRow, bundle_label, named_bundle, variant_row

NAME = "export"
REQUIRES = ("distill", "prune", "quantize")
# the bundle choice times every candidate with the benchmark's threads and timing settings (timing());
# the model card's title names the run
SECTIONS = ("name", "export", "benchmark.threads", "benchmark.warmup", "benchmark.min_seconds",
            "benchmark.min_runs", "benchmark.rounds")
VERSION = 4  # causal LMs: one graph with a KV cache (cached-vs-whole parity), genai_config.json in the bundle


def run(ctx) -> dict:
    cfg, splits, task = ctx.cfg, ctx.splits, ctx.task
    torch_rows = ctx.upstream("distill")["variants"] + ctx.upstream("prune")["variants"]
    rows: list[VariantRow] = []
    parity, written = {}, {}
    parity_x = splits.val.x[:256]  # real validation inputs; 256 keep LM logits small
    reference = ctx.teacher_reference()
    for src in progress(torch_rows, desc="export", quiet=ctx.quiet, unit="model"):
        name = src["variant"]
        model, _ = task.load(ctx.file(src["path"]), f"{src['path']}")
        out = ctx.out / f"{name}.onnx"
        task.export_onnx(model, ctx.file(src["path"]), out, cfg.export.opset, splits)
        set_metadata(out, {"kdpipe_variant": name, "kdpipe_task": task.name})
        sess, _ = make_session(out, "cpu")
        onnx_pred = onnx_predictor(sess, task.feeds)
        parity[name] = {**check_parity(torch_predictor(model), onnx_pred, parity_x),
                        **(task.cache_parity(sess, parity_x) or {})}
        rows.append(variant_row(name, "onnx-fp32", out, ctx.rel(out), src["params"],
                                score(onnx_pred, splits, task.metric, reference), NAME, source=name,
                                parity=parity[name]))
        written[bundle_label(rows[-1])] = out  # still in the staging folder, not yet at its recorded path
        say(f"[export] {name}: max |torch - onnx| = {parity[name]['max_abs_diff']:.2e}, "
            f"predictions agree on {parity[name]['agreement']:.2f}% of validation outputs")

    quantized = ctx.upstream("quantize")
    candidates = rows + quantized["variants"]
    threads = cfg.benchmark.thread_count()
    latency = batch1_latencies(ctx, candidates, written, threads)
    evidence = {bundle_label(r): r["_samples"] if "_samples" in r else ctx.evidence(r) for r in candidates}
    chosen, choice = choose_bundle(cfg.export, candidates, task.metric, latency, evidence)
    choice["threads"] = threads
    source = chosen.get("source", chosen["variant"])
    source_row = next(r for r in torch_rows if r["variant"] == source)
    info = task.write_bundle(ctx.out / "bundle", written.get(bundle_label(chosen)) or ctx.file(chosen["path"]),
                             bundle_label(chosen), ctx.file(source_row["path"]), splits, chosen["metric"], cfg)
    card = card_for_run(ctx.cfg, ctx.task, ctx.splits, ctx.upstream("distill"),
                        ctx.upstream("prune") if ctx.has("prune") else None,
                        Shipped(ctx.out / "bundle", chosen, info, choice, candidates, latency))
    write_model_card(ctx.out / "bundle", card)
    say(f"[export] bundle: {bundle_label(chosen)} -> {ctx.out.name}/bundle/ "
        f"({', '.join(sorted(os.listdir(ctx.out / 'bundle')))}): {choice['reason']}")
    return {"variants": ctx.record_evidence(rows), "parity": parity,
            "bundle": {"path": f"{NAME}/bundle", "variant": info["variant"], "choice": choice}}


def batch1_latencies(ctx, rows: list[VariantRow], written: dict, threads: int) -> dict[str, float]:
    """Batch-1 CPU p50 (ms) of every ONNX variant, side by side in rounds in this process with the
    benchmark's threads, timing settings and one real test input: what the bundle choice and the model
    card compare."""
    x = trim_padding(ctx.splits.test.x[:1])  # as the benchmark stage times it
    calls = {}
    for row in progress(rows, desc="bundle choice: sessions", quiet=ctx.quiet, unit="model"):
        sess, _ = make_session(written.get(bundle_label(row)) or ctx.file(row["path"]), "cpu", threads)
        names = input_names(sess)
        calls[bundle_label(row)] = (timed_call(sess, ctx.task.feeds(names, x), "cpu"), 1)
    timed = measure_rounds(calls, **ctx.cfg.benchmark.timing())
    return {label: stats["p50_ms"] for label, stats in timed.items()}


def check_parity(torch_predict, onnx_predict, x: np.ndarray) -> dict:
    """Max |difference| of the outputs and how often the arg-max (class, or token) agrees."""
    a, b = logits(torch_predict, x), logits(onnx_predict, x)
    return {
        "samples": int(len(x)),
        "max_abs_diff": float(np.abs(a - b).max()),
        "agreement": float((a.argmax(-1) == b.argmax(-1)).mean() * 100.0),
    }


def possible_bundles(cfg) -> list[str]:
    """Every name `export.bundle` could take under this config: what the stages would make."""
    models = ["teacher", "baseline", "student"] + (["pruned"] if cfg.prune.enabled else [])
    return [f"{m}-fp32" for m in models] + planned_variants(cfg)


def check(cfg) -> None:
    """Pre-flight: a bundle name that this config can never make is refused before any training."""
    name = cfg.export.bundle
    if name != "auto" and named_bundle(name, possible_bundles(cfg)) is None:
        raise ConfigError(f"export.bundle {name!r}: this config makes no such variant; it can be auto or one of: "
                          f"{', '.join(possible_bundles(cfg))}")

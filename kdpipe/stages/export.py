"""export: fp32 ONNX of every torch variant (dynamic batch axis), checked against torch on real
validation data, and the deployable bundle (chosen model + kdpipe.json) that plain onnxruntime loads."""

from __future__ import annotations

import os

import numpy as np

from kdpipe.data.splits import trim_padding
from kdpipe.errors import ConfigError
from kdpipe.model_card import ModelCard, Row, write_model_card
from kdpipe.evaluation import logits, onnx_predictor, score, torch_predictor
from kdpipe.progress import progress, say
from kdpipe.runtime.onnx_convert import set_metadata
from kdpipe.runtime.machine import default_threads, machine_info
from kdpipe.runtime.sessions import make_session, timed_call
from kdpipe.runtime.timing import measure_rounds
from kdpipe.variants import bundle_label, variant_row

NAME = "export"
REQUIRES = ("distill", "prune", "quantize")
# the bundle choice times every candidate with the benchmark's threads and timing settings (timing());
# the model card's title names the run
SECTIONS = ("name", "export", "benchmark.threads", "benchmark.warmup", "benchmark.min_seconds",
            "benchmark.min_runs", "benchmark.rounds")


def run(ctx) -> dict:
    cfg, splits, task = ctx.cfg, ctx.splits, ctx.task
    torch_rows = ctx.upstream("distill")["variants"] + ctx.upstream("prune")["variants"]
    rows, parity, written = [], {}, {}
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
        parity[name] = check_parity(torch_predictor(model), onnx_pred, parity_x)
        rows.append(variant_row(name, "onnx-fp32", out, ctx.rel(out), src["params"],
                                score(onnx_pred, splits, task.metric, reference), NAME, source=name,
                                parity=parity[name]))
        written[bundle_label(rows[-1])] = out  # still in the staging folder, not yet at its recorded path
        say(f"[export] {name}: max |torch - onnx| = {parity[name]['max_abs_diff']:.2e}, "
            f"predictions agree on {parity[name]['agreement']:.2f}% of validation outputs")

    quantized = ctx.upstream("quantize")
    candidates = rows + quantized["variants"]
    threads = cfg.benchmark.threads or default_threads()
    latency = batch1_latencies(ctx, candidates, written, threads)
    chosen, choice = choose_bundle(cfg.export, candidates, task.metric, latency)
    choice["threads"] = threads
    source = chosen.get("source", chosen["variant"])
    source_row = next(r for r in torch_rows if r["variant"] == source)
    info = task.write_bundle(ctx.out / "bundle", written.get(bundle_label(chosen)) or ctx.file(chosen["path"]),
                             bundle_label(chosen), ctx.file(source_row["path"]), splits, chosen["metric"], cfg)
    write_model_card(ctx.out / "bundle", _model_card(ctx, chosen, info, candidates, latency, choice))
    say(f"[export] bundle: {bundle_label(chosen)} -> {ctx.out.name}/bundle/ "
        f"({', '.join(sorted(os.listdir(ctx.out / 'bundle')))}): {choice['reason']}")
    return {"variants": rows, "parity": parity,
            "bundle": {"path": f"{NAME}/bundle", "variant": info["variant"], "choice": choice}}


def batch1_latencies(ctx, rows: list[dict], written: dict, threads: int) -> dict[str, float]:
    """Batch-1 CPU p50 (ms) of every ONNX variant, side by side in rounds in this process with the
    benchmark's threads, timing settings and one real test input: what the bundle choice and the model
    card compare."""
    x = trim_padding(ctx.splits.test.x[:1])  # as the benchmark stage times it
    calls = {}
    for row in progress(rows, desc="bundle choice: sessions", quiet=ctx.quiet, unit="model"):
        sess, _ = make_session(written.get(bundle_label(row)) or ctx.file(row["path"]), "cpu", threads)
        names = [i.name for i in sess.get_inputs()]
        calls[bundle_label(row)] = (timed_call(sess, ctx.task.feeds(names, x), "cpu"), 1)
    timed = measure_rounds(calls, **ctx.cfg.benchmark.timing())
    return {label: stats["p50_ms"] for label, stats in timed.items()}


def _params(params: dict) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else ""


def _model_card(ctx, chosen: dict, info: dict, onnx_rows: list[dict], latency: dict, choice: dict) -> ModelCard:
    """The facts of the bundle's README.md: how it was made, and its test metric, size and batch-1
    latency beside the teacher's, the quantized teacher's and the no-KD student's (latencies timed
    here side by side, same threads and inputs)."""
    cfg, task, splits = ctx.cfg, ctx.task, ctx.splits
    distill = ctx.upstream("distill")
    torch_rows = {r["variant"]: r for r in distill["variants"]}
    by_label = {bundle_label(r): r for r in onnx_rows}
    threads = cfg.benchmark.threads or default_threads()

    def lat(row):
        return latency[bundle_label(row)]

    bundle_model = ctx.out / "bundle" / info["model"]
    rows = [Row(f"**this model** ({bundle_label(chosen)})", chosen["metric"]["test"], bundle_model.stat().st_size,
                lat(chosen))]
    if "teacher-int8-dynamic" in by_label and by_label["teacher-int8-dynamic"] is not chosen:
        q = by_label["teacher-int8-dynamic"]
        rows.append(Row("teacher quantized (dynamic int8, no distillation)", q["metric"]["test"], q["size_bytes"],
                        lat(q)))
    t = by_label["teacher-fp32"]
    rows.append(Row("teacher (ONNX fp32)", t["metric"]["test"], t["size_bytes"], lat(t)))
    if "baseline" in torch_rows:
        b = torch_rows["baseline"]
        rows.append(Row("the same student trained without KD (PyTorch)", b["metric"]["test"], b["size_bytes"]))

    tc, kd, training = cfg.teacher, distill.get("kd", {}), distill.get("training", {})
    given = training.get("teacher", {}).get("source")
    made = [f"Teacher: `{tc.model}` ({torch_rows['teacher']['params']:,} parameters), "
            + (f"given ({given})" + (", fine-tuned here" if "history" in training.get("teacher", {}) else "")
               if given else f"trained here for {tc.train.epochs} epochs") + ".",
            f"Student: `{cfg.student.model}`{_params(cfg.student.params)} ({torch_rows['student']['params']:,} "
            f"parameters), trained {cfg.distill.epochs} epochs with knowledge distillation: "
            + ", ".join(f"{k} {v}" for k, v in kd.items() if k != "cache_teacher") + "."]
    if ctx.has("prune"):
        p = ctx.upstream("prune")
        removed = p.get("removed", {}).get("removed") or f"{p['ratio']:.0%} of channels/neurons"
        made.append(f"Pruned ({p.get('removed', {}).get('method', 'structured')}): {removed} removed "
                    f"({p['params_before']:,} -> "
                    f"{p['params_after']:,} parameters), then a KD recovery fine-tune.")
    if chosen.get("source", chosen["variant"]) == "teacher":
        made = [made[0], f"This bundle is the teacher itself, quantized: no distillation. Chosen because {choice['reason']}."]
    qi = chosen.get("quantization")
    made.append("Exported to ONNX fp32 (checked against PyTorch)." if not qi else
                f"Exported to ONNX and quantized: {qi['method']}"
                + (f", {qi['calibration']} calibration on {qi.get('calibration_samples', '?')} training samples"
                   if qi.get("calibration") else "") + (", per-channel weights" if qi.get("per_channel") else "")
                + ("" if qi["method"] not in ("dynamic", "static") else ", 7-bit weights (no CPU's int8 kernels can saturate them)"
                   if qi.get("reduce_range") else ", 8-bit weights (x86 CPUs without VNNI can saturate them and give "
                                                  "other outputs: measure there, or set quantize.reduce_range: true)")
                + ".")
    made.append(f"Data: `{cfg.data.source}`, split train/validation/test {len(splits.train):,}/{len(splits.val):,}/"
                f"{len(splits.test):,} (seed {cfg.seed}); the bundle was chosen on validation: {choice['reason']}.")
    import onnxruntime

    m = task.metric
    return ModelCard(
        title=f"{cfg.name}: {bundle_label(chosen)}",
        task="text-classification" if task.name == "classification" and "tokenizer" in info else task.name,
        variant=bundle_label(chosen),
        precision=chosen["format"].removeprefix("onnx-"), metric_name=m.name,
        metric_unit=m.unit, higher_is_better=m.higher_is_better, made=made, rows=rows, test_samples=len(splits.test),
        data_source=cfg.data.source, machine={**machine_info(), "threads": threads, "onnxruntime": onnxruntime.__version__},
        runtimes=info.get("runtimes", {}), files=sorted(os.listdir(ctx.out / "bundle")) + ["README.md"],
        labels=info.get("labels"))


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
    names = [f"{m}-fp32" for m in models]
    if cfg.quantize.enabled:
        qc = cfg.quantize
        sources = {"auto": models[2:], "student": ["student"], "pruned": ["pruned"]}[qc.source]
        if qc.teacher:
            names.append("teacher-int8-dynamic")
        for src in sources:
            names.append(f"{src}-fp32-fused")  # transformers whose graph onnxruntime fuses
            for v in qc.variants:
                if v == "static":
                    int8 = [f"{src}-int8-static-{c}" for c in qc.calibration]
                elif v == "dynamic":
                    int8 = [f"{src}-int8-dynamic"]
                    names.append(f"{src}-int8-dynamic-fused")
                else:
                    int8 = []
                    names.append(f"{src}-fp16")
                names += int8 + ([f"{n}-mixed" for n in int8] if qc.search else [])  # accuracy-aware int8
    return names


def check(cfg) -> None:
    """Pre-flight: a bundle name that this config can never make is refused before any training."""
    name = cfg.export.bundle
    if name != "auto" and name not in possible_bundles(cfg) and f"{name}-fp32" not in possible_bundles(cfg):
        raise ConfigError(f"export.bundle {name!r}: this config makes no such variant; it can be auto or one of: "
                          f"{', '.join(possible_bundles(cfg))}")


SAME_SPEED = 1.05  # batch-1 latencies within 5% of the fastest count as a tie: the smaller file wins there


def choose_bundle(ec, candidates: list[dict], metric, latency: dict[str, float]) -> tuple[dict, dict]:
    """The variant to ship and why. auto: of the ONNX variants within `max_drop` (metric units) of the
    teacher on validation, the fastest at batch 1 (the smallest of those within 5% of its speed),
    the teacher quantized without distillation included; when none is within, the most accurate.
    The teacher in fp32 and the student trained without KD are not candidates: they are what the
    bundle is compared with."""
    by_label = {bundle_label(r): r for r in candidates}
    if ec.bundle != "auto":
        wanted = ec.bundle if ec.bundle in by_label else f"{ec.bundle}-fp32"
        if wanted not in by_label:  # possible under the config, but not made in this run (e.g. no fusions)
            raise ConfigError(f"export.bundle {ec.bundle!r}: not made in this run (made: {', '.join(sorted(by_label))})")
        return by_label[wanted], {"rule": "export.bundle", "reason": f"export.bundle names {ec.bundle}"}
    teacher_val = by_label["teacher-fp32"]["metric"]["val"]
    pool = [r for r in candidates if bundle_label(r) not in ("teacher-fp32", "baseline-fp32")]
    drop = {bundle_label(r): metric.worse_by(teacher_val, r["metric"]["val"]) for r in pool}
    within = [r for r in pool if drop[bundle_label(r)] <= ec.max_drop]
    units = (" point" if ec.max_drop == 1 else " points") if metric.unit == "%" else ""
    if within:
        fastest = min(latency[bundle_label(r)] for r in within)
        near = [r for r in within if latency[bundle_label(r)] <= fastest * SAME_SPEED]
        chosen = min(near, key=lambda r: (r["size_bytes"], latency[bundle_label(r)]))
        reason = (f"the fastest at batch 1 of the {len(within)} variant{'s' if len(within) > 1 else ''} within "
                  f"{ec.max_drop:g}{units} of the "
                  f"teacher's validation {metric.name}" + (f" (the smallest of the {len(near)} within 5% of its speed)"
                                                           if len(near) > 1 else ""))
    else:
        sign = 1 if metric.higher_is_better else -1
        chosen = max(pool, key=lambda r: (sign * r["metric"]["val"], -latency[bundle_label(r)]))
        reason = (f"no variant is within {ec.max_drop:g}{units} of the teacher's validation {metric.name} "
                  f"(export.max_drop): the most accurate one")
    if chosen.get("source") == "teacher":
        reason += "; it is the teacher quantized without distillation: no student variant does better on validation"
    return chosen, {
        "rule": "auto", "reason": reason, "max_drop": ec.max_drop, "teacher_val": teacher_val,
        "candidates": [{"variant": bundle_label(r), "val": r["metric"]["val"], "val_drop": round(drop[bundle_label(r)], 4),
                        "size_bytes": r["size_bytes"], "latency_b1_ms": round(latency[bundle_label(r)], 4),
                        "within": r in within} for r in pool]}

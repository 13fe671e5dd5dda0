"""export: fp32 ONNX of every torch variant (dynamic batch axis), checked against torch on real
validation data, and the deployable bundle (chosen model + kdpipe.json) that plain onnxruntime loads."""

from __future__ import annotations

import os

import numpy as np

from kdpipe.data.splits import trim_padding, undo_preprocessing
from kdpipe.errors import ConfigError
from kdpipe.model_card import ModelCard, Row, input_conventions, write_model_card
from kdpipe.evaluation import logits, onnx_predictor, score, torch_predictor
from kdpipe.evidence import paired_drop, samples_needed
from kdpipe.progress import progress, say
from kdpipe.runtime.onnx_convert import set_metadata
from kdpipe.runtime.machine import default_threads, machine_info
from kdpipe.runtime.sessions import make_session, timed_call
from kdpipe.runtime.timing import measure_rounds
from kdpipe.variants import QUANTIZED_TEACHER, bundle_label, variant_name, variant_row

NAME = "export"
REQUIRES = ("distill", "prune", "quantize")
# the bundle choice times every candidate with the benchmark's threads and timing settings (timing());
# the model card's title names the run
SECTIONS = ("name", "export", "benchmark.threads", "benchmark.warmup", "benchmark.min_seconds",
            "benchmark.min_runs", "benchmark.rounds")
VERSION = 3  # the bundle is chosen on paired evidence (kdpipe.evidence), with exact binomial floors on its intervals


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
    evidence = {bundle_label(r): r["_samples"] if "_samples" in r else ctx.evidence(r) for r in candidates}
    chosen, choice = choose_bundle(cfg.export, candidates, task.metric, latency, evidence)
    choice["threads"] = threads
    source = chosen.get("source", chosen["variant"])
    source_row = next(r for r in torch_rows if r["variant"] == source)
    info = task.write_bundle(ctx.out / "bundle", written.get(bundle_label(chosen)) or ctx.file(chosen["path"]),
                             bundle_label(chosen), ctx.file(source_row["path"]), splits, chosen["metric"], cfg)
    write_model_card(ctx.out / "bundle", _model_card(ctx, chosen, info, candidates, latency, choice))
    say(f"[export] bundle: {bundle_label(chosen)} -> {ctx.out.name}/bundle/ "
        f"({', '.join(sorted(os.listdir(ctx.out / 'bundle')))}): {choice['reason']}")
    return {"variants": ctx.record_evidence(rows), "parity": parity,
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
    if QUANTIZED_TEACHER in by_label and by_label[QUANTIZED_TEACHER] is not chosen:
        q = by_label[QUANTIZED_TEACHER]
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
    # the line of models the bundle comes from: teacher, then its own source's steps (student, pruned), then it
    line = ["teacher-fp32"] if chosen.get("source") == "teacher" else [
        k for k in ("teacher-fp32", "student-fp32", "pruned-fp32")
        if k in by_label and (k != "pruned-fp32" or chosen.get("source", chosen["variant"]) == "pruned")]
    if bundle_label(chosen) not in line:
        line.append(bundle_label(chosen))
    chain = [Row(k, by_label[k]["metric"]["test"], by_label[k]["size_bytes"], lat(by_label[k])) for k in line]
    raw = None if "tokenizer" in info or "preprocessing" not in info else undo_preprocessing(
        splits.train.x[:2000], info["preprocessing"])
    import onnxruntime

    m = task.metric
    return ModelCard(
        title=f"{cfg.name}: {bundle_label(chosen)}",
        task=task.card_task,
        variant=bundle_label(chosen),
        precision=chosen["format"].removeprefix("onnx-"), metric_name=m.name,
        metric_unit=m.unit, higher_is_better=m.higher_is_better, made=made, rows=rows, test_samples=len(splits.test),
        data_source=cfg.data.source, machine={**machine_info(), "threads": threads, "onnxruntime": onnxruntime.__version__},
        runtimes=info.get("runtimes", {}), files=sorted(os.listdir(ctx.out / "bundle")) + ["README.md"],
        labels=info.get("labels"), chain=chain, inputs=input_conventions(info, raw), license=cfg.export.license,
        sources=f"the teacher `{tc.model}` and the data `{cfg.data.source}`")


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
            names.append(QUANTIZED_TEACHER)
        for src in sources:
            names.append(variant_name(src, "fp32-fused"))  # transformers whose graph onnxruntime fuses
            for v in qc.variants:
                for kind, calibration in [("static", c) for c in qc.calibration] if v == "static" else [(v, None)]:
                    names.append(variant_name(src, kind, calibration))
                    if kind != "fp16" and qc.search:  # accuracy-aware int8
                        names.append(variant_name(src, kind, calibration, mixed=True))
                if v == "dynamic":
                    names.append(variant_name(src, "dynamic-fused"))
    return names


def check(cfg) -> None:
    """Pre-flight: a bundle name that this config can never make is refused before any training."""
    name = cfg.export.bundle
    if name != "auto" and name not in possible_bundles(cfg) and f"{name}-fp32" not in possible_bundles(cfg):
        raise ConfigError(f"export.bundle {name!r}: this config makes no such variant; it can be auto or one of: "
                          f"{', '.join(possible_bundles(cfg))}")


SAME_SPEED = 1.05  # batch-1 latencies within 5% of the fastest count as a tie: the smaller file wins there


def choose_bundle(ec, candidates: list[dict], metric, latency: dict[str, float],
                  evidence: dict[str, dict | None]) -> tuple[dict, dict]:
    """The variant to ship and why, decided on paired evidence: each candidate is compared with the
    teacher (ONNX fp32) on the same validation samples (a 95% paired interval on how much worse it is).

    auto, in order:
    1. A quantized variant whose damage against its own fp32 source exceeds `max_drop` is left out:
       the answers it broke, which answers it happened to fix do not cancel (evidence.versus).
    2. Of the rest, those *shown* within `max_drop` of the teacher (upper bound <= max_drop): the
       fastest at batch 1 (the smallest of those within 5% of its speed).
    3. When the validation split cannot show any within (too few samples, or none close enough): the
       most accurate, and with it every variant the evidence cannot tell from it (their paired interval
       against it reaches 0); of those, the fastest, as in 2.
    The teacher in fp32 and the student trained without KD are not candidates: they are what the bundle
    is compared with. The teacher quantized without distillation is one."""
    by_label = {bundle_label(r): r for r in candidates}
    if ec.bundle != "auto":
        wanted = ec.bundle if ec.bundle in by_label else f"{ec.bundle}-fp32"
        if wanted not in by_label:  # possible under the config, but not made in this run (e.g. no fusions)
            raise ConfigError(f"export.bundle {ec.bundle!r}: not made in this run (made: {', '.join(sorted(by_label))})")
        return by_label[wanted], {"rule": "export.bundle", "reason": f"export.bundle names {ec.bundle}"}
    teacher_val = by_label["teacher-fp32"]["metric"]["val"]
    reference = (evidence.get("teacher-fp32") or {}).get("val")
    pool = [r for r in candidates if bundle_label(r) not in ("teacher-fp32", "baseline-fp32")]
    units = (" point" if ec.max_drop == 1 else " points") if metric.unit == "%" else ""

    def vs_teacher(r) -> dict:
        mine = (evidence.get(bundle_label(r)) or {}).get("val")
        if reference is None or mine is None:  # recorded without evidence: the point value alone
            d = metric.worse_by(teacher_val, r["metric"]["val"])
            return {"drop": round(d, 4), "ci": [round(d, 4), round(d, 4)], "no_evidence": True}
        return paired_drop(metric, reference, mine)

    facts = {bundle_label(r): vs_teacher(r) for r in pool}
    damaged = {bundle_label(r) for r in pool if _damage(r) > ec.max_drop}
    eligible = [r for r in pool if bundle_label(r) not in damaged] or pool
    within = [r for r in eligible if facts[bundle_label(r)]["ci"][1] <= ec.max_drop]
    n = len(reference) if reference is not None else None
    if within:
        chosen, near = _fastest(within, latency)
        reason = ((f"the fastest at batch 1 of the {len(within)} variants" if len(within) > 1 else "the only variant")
                  + f" shown within {ec.max_drop:g}{units} of the teacher's validation {metric.name} (paired 95% upper "
                  f"bound{'s' if len(within) > 1 else ''} <= {ec.max_drop:g})"
                  + (f"; the smallest of the {len(near)} within 5% of its speed" if len(near) > 1 else ""))
        close = within
    else:
        sign = 1 if metric.higher_is_better else -1
        best = max(eligible, key=lambda r: (sign * r["metric"]["val"], -latency[bundle_label(r)]))
        ref_best = (evidence.get(bundle_label(best)) or {}).get("val")

        def indistinguishable(r) -> bool:
            mine = (evidence.get(bundle_label(r)) or {}).get("val")
            if r is best or ref_best is None or mine is None:
                return r is best
            return paired_drop(metric, ref_best, mine)["ci"][0] <= 0

        close = [r for r in eligible if indistinguishable(r)]
        chosen, near = _fastest(close, latency)
        lowest = min(facts[bundle_label(r)]["ci"][1] for r in eligible)
        reason = (f"no variant is shown within {ec.max_drop:g}{units} of the teacher's validation {metric.name}"
                  + (f" on {n:,} samples" if n else "") + f" (the lowest paired 95% upper bound is {lowest:.2f}); "
                  f"of the {len(close)} variant{'s' if len(close) > 1 else ''} the evidence cannot tell from the most "
                  f"accurate ({bundle_label(best)}, {best['metric']['val']:.2f}{metric.unit}), the fastest at batch 1")
    if damaged:
        reason += (f"; left out for breaking more than {ec.max_drop:g}{units} against their fp32 source: "
                   + ", ".join(f"{d} ({_damage(by_label[d]):.2f})" for d in sorted(damaged)))
    students = [r for r in close if r.get("source") != "teacher"]
    if chosen.get("source") == "teacher":
        reason += ("; it is the teacher quantized without distillation" + (
            ": the evidence cannot separate it from the distilled " + ", ".join(bundle_label(r) for r in students[:3])
            + ", and it is faster or smaller" if students else ": no distilled variant is as close to the teacher"))
    elif any(r.get("source") == "teacher" for r in close):
        reason += "; the evidence cannot separate it from the quantized teacher, and it is faster or smaller"
    choice = {"rule": "auto", "reason": reason, "max_drop": ec.max_drop, "teacher_val": teacher_val,
              "validation_samples": n,
              "candidates": [{"variant": bundle_label(r), "val": r["metric"]["val"],
                              "val_drop": facts[bundle_label(r)]["drop"], "val_drop_ci": facts[bundle_label(r)]["ci"],
                              **({"vs_source": r["vs_source"]} if r.get("vs_source") else {}),
                              "size_bytes": r["size_bytes"], "latency_b1_ms": round(latency[bundle_label(r)], 4),
                              "shown_within": r in within, "left_out": bundle_label(r) in damaged} for r in pool]}
    resolution = _resolution(facts, by_label)
    if resolution is not None and resolution > ec.max_drop and n:
        choice["resolution"] = {"half_width": round(resolution, 4), "samples": n,
                                "samples_needed": samples_needed(resolution, n, ec.max_drop)}
    return chosen, choice


def _damage(row: dict) -> float:
    """A quantized row's damage against its fp32 source on validation (0 for rows made without one)."""
    return (row.get("vs_source") or {}).get("damage_val", 0.0)


def _fastest(rows: list[dict], latency: dict[str, float]) -> tuple[dict, list[dict]]:
    """The fastest at batch 1, the smallest of those within 5% of its speed; and those near it."""
    fastest = min(latency[bundle_label(r)] for r in rows)
    near = [r for r in rows if latency[bundle_label(r)] <= fastest * SAME_SPEED]
    return min(near, key=lambda r: (r["size_bytes"], latency[bundle_label(r)])), near


def _resolution(facts: dict, by_label: dict) -> float | None:
    """How finely the validation split tells a variant from the teacher: the half-width of the paired
    interval of the distilled student (fp32) against it."""
    f = facts.get("student-fp32") or facts.get("pruned-fp32")
    if f is None or f.get("no_evidence"):
        return None
    return (f["ci"][1] - f["ci"][0]) / 2

"""quantize: onnxruntime int8 (dynamic; static QDQ calibrated on training data with MinMax, Entropy or
Percentile), int4 weight-only (MatMulNBits) and fp16 (for the CUDA provider) from the final student, and the teacher itself in dynamic
int8 (the no-distillation bar); each variant's accuracy is measured by running it in onnxruntime on
the validation and test splits."""

from __future__ import annotations

import tempfile
from pathlib import Path


from kdpipe.evaluation import evaluate_samples, onnx_predictor, score
from kdpipe.evidence import damage, versus
from kdpipe.progress import progress, say
from kdpipe.runtime.quantization import (Int4, Int8, calibration_batches, dynamic_int8, int4_weight_only, op_counts,
                                         quiet_root_logger, static_int8, to_fp16)
from kdpipe.runtime.sessions import input_names, make_session, ort
from kdpipe.variants import QUANTIZED_TEACHER, Format, VariantRow, variant_name, variant_row

NAME = "quantize"
REQUIRES = ("distill", "prune")
SECTIONS = ("seed", "quantize", "export")
VERSION = 6  # causal LMs quantized from the KV-cache graph; int4 (embeddings too)


def run(ctx) -> dict:
    qc = ctx.cfg.quantize
    if not qc.enabled:
        say("[quantize] disabled in the config (quantize.enabled: false)")
        return {"skipped": "quantize.enabled is false", "variants": []}
    source = _source_name(ctx)
    task, splits = ctx.task, ctx.splits
    upstream = ctx.upstream("prune" if source == "pruned" else "distill")
    src_row = next(r for r in upstream["variants"] if r["variant"] == source)
    model, _ = task.load(ctx.file(src_row["path"]), f"{source} model")
    calib = calibration_batches(splits.train.x, qc.calibration_samples, ctx.cfg.seed)

    ort()  # clear error if the onnxruntime install is broken
    from onnxruntime.quantization.shape_inference import quant_pre_process

    jobs = _jobs(qc)
    rows: list[VariantRow] = []
    with tempfile.TemporaryDirectory() as tmp, quiet_root_logger():
        fp32 = Path(tmp) / "fp32.onnx"
        task.export_onnx(model, ctx.file(src_row["path"]), fp32, ctx.cfg.export.opset, splits)
        src_evidence = _evidence_of(task, splits, fp32)  # what every variant of it is compared with
        fused_path = ctx.out / f"{variant_name(source, 'fp32-fused')}.onnx"
        fusions = task.fuse(fp32, fused_path, model)  # None where the model type has nothing to fuse
        if fusions:
            rows.append(_row(ctx, task, splits, fused_path, fused_path.stem, "onnx-fp32", src_row, source,
                             {"method": "fusion", "calibration": None, "per_channel": False, "reduce_range": False,
                              "fusions": fusions, "ops": op_counts(fused_path)}))
            say(f"[quantize] fused operators: {', '.join(f'{k} {v}' for k, v in fusions.items())}")
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        # Dynamic int8 is made from the plain and, where fusions ran, from the fused graph: which is
        # faster depends on the model and CPU, so both are measured. Static QDQ starts from the plain
        # graph only (its calibrators cannot type the fused contrib ops).
        if fusions:
            jobs = [j for job in jobs for j in ([job, ("dynamic-fused", None)] if job[0] == "dynamic" else [job])]
        static_ops = qc.op_types or task.quantize_op_types  # None: every op type the quantizer supports
        dyn_ops = qc.op_types or (task.quantize_op_types and task.quantize_op_types + task.dynamic_extra_ops)
        names = input_names(prepared)
        calib_feeds = [task.feeds(names, b) for b in calib]
        for kind, calibration in progress(jobs, desc="quantize", quiet=ctx.quiet, unit="variant"):
            name = variant_name(source, kind, calibration)
            out = ctx.out / f"{name}.onnx"
            if kind == "dynamic":
                rows.append(_dynamic_variant(ctx, prepared, out, name, dyn_ops, src_row, source, {"fused": False}))
                continue
            if kind == "dynamic-fused":
                # a fused Attention node holds the Q/K/V weights: dynamic int8 can quantize it
                rows.append(_dynamic_variant(ctx, fused_path, out, name, dyn_ops and dyn_ops + ["Attention"], src_row,
                                             source, {"fused": True}))
                continue
            if kind == "int4":
                rows += _int4_variant(ctx, fp32, out, name, src_row, source)
                continue
            if kind == "static":
                static_int8(prepared, out, Int8(qc.per_channel is True, qc.reduce_range is not False, static_ops),
                            calibration, calib_feeds)
            else:
                to_fp16(fp32, out)
            rows.append(_row(ctx, task, splits, out, name, "onnx-fp16" if kind == "fp16" else "onnx-int8", src_row,
                             source, {"method": kind, "calibration": calibration,
                                      **({"calibration_samples": sum(map(len, calib))} if kind == "static" else {}),
                                      "per_channel": qc.per_channel is True,
                                      "reduce_range": kind == "static" and qc.reduce_range is not False,
                                      "fused": False,
                                      "ops": op_counts(out)}))
        for r in rows:
            r["vs_source"] = versus(task.metric, src_evidence, r["_samples"], splits)
        search = None
        if qc.search:
            mixed, search = _accuracy_aware(ctx, rows, src_evidence, src_row, source, prepared, calib_feeds,
                                            static_ops, dyn_ops)
            rows += [mixed] if mixed else []
        if qc.teacher:
            rows.append(_quantized_teacher(ctx, Path(tmp), qc, dyn_ops))
    for r in rows:
        vs = r["vs_source"]
        say(f"[quantize] {r['variant']}: {r['size_bytes']} bytes, test {task.metric.name} "
            f"{r['metric']['test']:.2f}{task.metric.unit}; against its fp32 source on validation: "
            f"{vs['agreement_val']}% of answers kept, {vs['damage_val']:.2f} broken, net {vs['drop_val']:+.2f} "
            f"(95% {vs['drop_val_ci'][0]:+.2f} to {vs['drop_val_ci'][1]:+.2f})")
    return {"source": source, "source_metric": src_row["metric"], "variants": ctx.record_evidence(rows),
            **({"int8_search": search} if search else {})}


def _evidence_of(task, splits, onnx_path: Path) -> dict:
    """Per-sample evidence of an fp32 ONNX model on validation and test, in onnxruntime."""
    sess, _ = make_session(onnx_path, "cpu")
    predict = onnx_predictor(sess, task.feeds)
    return {name: evaluate_samples(predict, split, task.metric)[1] for name, split in (("val", splits.val),
                                                                                        ("test", splits.test))}


def _accuracy_aware(ctx, rows, src_evidence, src_row, source, prepared, calib_feeds, static_ops, dyn_ops):
    """When the least damaged int8 variant still breaks more than export.max_drop against its fp32 source
    on validation (evidence.versus: answers it broke count even where others it fixed cancel them in
    its accuracy), keep its most sensitive nodes in float until it does not (runtime.int8_search).
    Returns (the mixed variant or None, the search's record or None when no search was needed)."""
    from kdpipe.runtime.int8_search import exclusion_names, quantizable_nodes, search

    task, splits, metric = ctx.task, ctx.splits, ctx.task.metric
    budget = ctx.cfg.export.max_drop
    int8 = [r for r in rows if r["format"] == "onnx-int8" and not r["quantization"].get("fused")]
    if not int8:
        return None, None
    best = min(int8, key=lambda r: (r["vs_source"]["damage_val"], r["vs_source"]["drop_val"]))
    lost, broke = best["vs_source"]["drop_val"], best["vs_source"]["damage_val"]
    if broke <= budget:
        return None, None
    qi = best["quantization"]
    ops = dyn_ops if qi["method"] == "dynamic" else static_ops

    def quantize(out, exclude):  # as the variant it starts from, with `exclude` kept in float
        s = Int8(qi["per_channel"] is True, qi["reduce_range"] is True, ops, exclusion_names(exclude))
        if qi["method"] == "dynamic":
            dynamic_int8(prepared, out, s)
        else:
            static_int8(prepared, out, s, qi["calibration"], calib_feeds)

    def val_metric(path):  # the mix's validation metric and its damage against the fp32 source
        sess, _ = make_session(path, "cpu")
        val, samples = evaluate_samples(onnx_predictor(sess, task.feeds), splits.val, metric)
        return {"val": round(val, 4), "damage": damage(metric, src_evidence["val"], samples)}

    nodes = quantizable_nodes(prepared, ops)
    say(f"[quantize] {best['variant']} breaks {broke:.2f} against {source} on validation (net {lost:+.2f}; budget "
        f"export.max_drop {budget:g}): measuring which of its {len(nodes)} quantizable nodes to keep in float")
    res = search(prepared, quantize, nodes, task.feeds, splits.val.x, val_metric, lambda v: v["damage"] <= budget)
    top = sorted(res.sensitivity.items(), key=lambda kv: -kv[1])[:10]
    record = {"from": best["variant"], "lost": round(lost, 4), "damage": broke, "budget": budget,
              "nodes": res.nodes,
              "kept_float": res.kept_float, "tried": res.tried, "most_sensitive": dict(top),
              "found": res.val is not None}
    if res.val is None:
        say(f"[quantize] no mix of int8 and float nodes is within {budget:g} of {source}: nothing added")
        return None, record
    name = variant_name(source, qi["method"], qi["calibration"], mixed=True)
    out = ctx.out / f"{name}.onnx"
    quantize(out, res.kept_float)
    row = _row(ctx, task, splits, out, name, "onnx-int8", src_row, source,
               {**qi, "kept_float": res.kept_float, "ops": op_counts(out)})
    row["vs_source"] = versus(metric, src_evidence, row["_samples"], splits)
    say(f"[quantize] {name}: {len(res.kept_float)} of {res.nodes} nodes kept in float "
        f"({', '.join(res.kept_float[:5])}{' ...' if len(res.kept_float) > 5 else ''})")
    return row, record


def _int4_variant(ctx, fp32: Path, out: Path, name: str, src_row: VariantRow, source: str) -> list[VariantRow]:
    """Weight-only int4 of the plain fp32 graph (MatMulNBits); none where the graph has no weight matrix."""
    qc = ctx.cfg.quantize
    settings = Int4(qc.int4_block_size, qc.int4_accuracy_level, embeddings=qc.int4_embeddings)
    matmuls = int4_weight_only(fp32, out, settings)
    if not matmuls:
        out.unlink(missing_ok=True)
        say(f"[quantize] {name}: the graph has no weight matrix (MatMul, Gemm, embedding) for int4; left out")
        return []
    return [_row(ctx, ctx.task, ctx.splits, out, name, "onnx-int4", src_row, source,
                 {"method": "int4-weight-only", "calibration": None, "per_channel": False, "reduce_range": False,
                  "fused": False, "block_size": settings.block_size, "accuracy_level": settings.accuracy_level,
                  "embeddings": settings.embeddings, "weight_matrices": matmuls, "ops": op_counts(out)})]


def _quantized_teacher(ctx, tmp: Path, qc, op_types) -> VariantRow:
    """What a user gets without distillation: the teacher itself, dynamic int8, plain and per-channel
    weights, the better on validation kept (ties: plain, the faster on most CPUs), in
    the students' weight bits. Every report shows it beside the students, measured the same way."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    task, splits = ctx.task, ctx.splits
    t_row = next(r for r in ctx.upstream("distill")["variants"] if r["variant"] == "teacher")
    model, _ = task.load(ctx.file(t_row["path"]), "teacher model")
    fp32, prepared = tmp / "teacher-fp32.onnx", tmp / "teacher-prepared.onnx"
    task.export_onnx(model, ctx.file(t_row["path"]), fp32, ctx.cfg.export.opset, splits)
    del model
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    # the bar: the better of plain and per-channel; weight bits as the students' (quantize.reduce_range),
    # so that no int8 bundle kdpipe can ship saturates on CPUs without VNNI unless told otherwise
    auto = qc.model_copy(update={"per_channel": "auto"})
    row = _dynamic_variant(ctx, prepared, ctx.out / f"{QUANTIZED_TEACHER}.onnx", QUANTIZED_TEACHER, op_types,
                           t_row, "teacher", {"no_distillation": True}, auto)
    row["vs_source"] = versus(task.metric, _evidence_of(task, splits, fp32), row["_samples"], splits)
    return row


def _dynamic_variant(ctx, src: Path, out: Path, name: str, op_types, src_row: VariantRow, source: str, info: dict,
                     qc=None) -> VariantRow:
    """Dynamic int8 of `src`, measured. Where quantize.per_channel or reduce_range is auto, each way is
    made and measured and the better on validation kept (ties: plain weights, the faster on most CPUs,
    and 7-bit, which no CPU's kernels can overflow); what each scored is recorded."""
    qc = qc or ctx.cfg.quantize
    task, splits = ctx.task, ctx.splits
    channels = (False, True) if qc.per_channel == "auto" else (qc.per_channel is True,)
    ranges = (True, False) if qc.reduce_range == "auto" else (qc.reduce_range is True,)
    choices = [(pc, rr) for pc in channels for rr in ranges]
    tried = {}
    for pc, rr in choices:
        path = out if len(choices) == 1 else out.with_name(f"{out.stem}-{_label(pc, rr)}.onnx".replace(", ", "-"))
        dynamic_int8(src, path, Int8(pc, rr, op_types))
        tried[pc, rr] = (path, _row(ctx, task, splits, path, name, "onnx-int8", src_row, source,
                                    {"method": "dynamic", "calibration": None, "per_channel": pc,
                                     "reduce_range": rr, **info, "ops": op_counts(path)}))
    sign = 1 if task.metric.higher_is_better else -1
    best = max(tried, key=lambda k: (sign * tried[k][1]["metric"]["val"], not k[0], k[1]))
    path, row = tried[best]
    if len(tried) > 1:
        path.replace(out)
        for key, (other, _) in tried.items():
            if key != best:
                other.unlink()
        row.update(path=ctx.rel(out))
        row["quantization"]["candidates_val"] = {_label(*k) if len(ranges) > 1 else _label(k[0]): r["metric"]["val"]
                                                 for k, (_, r) in tried.items()}
    return row


def _label(per_channel: bool, reduce_range: bool | None = None) -> str:
    """A dynamic int8 candidate's name in the record: plain or per-channel weights, 7 or 8 bits."""
    return ("per-channel" if per_channel else "plain") + ("" if reduce_range is None else
                                                          ", 7-bit" if reduce_range else ", 8-bit")


def _row(ctx, task, splits, path: Path, name: str, fmt: Format, src_row: VariantRow, source: str,
         info: dict) -> VariantRow:
    """A variant measured in onnxruntime on the validation and test splits."""
    sess, _ = make_session(path, "cpu")
    predict = onnx_predictor(sess, task.feeds)
    return variant_row(name, fmt, path, ctx.rel(path), src_row["params"],
                       score(predict, splits, task.metric, ctx.teacher_reference()), NAME, source=source,
                       quantization=info)


def _source_name(ctx) -> str:
    wanted = ctx.cfg.quantize.source
    if wanted == "pruned" and not ctx.has("prune"):
        from kdpipe.errors import ConfigError

        raise ConfigError("quantize.source: pruned, but the prune stage is disabled (prune.enabled: false)")
    if wanted == "auto":
        return "pruned" if ctx.has("prune") else "student"
    return wanted


def _jobs(qc) -> list[tuple[str, str | None]]:
    jobs: list[tuple[str, str | None]] = []
    for v in qc.variants:
        if v == "static":
            jobs += [("static", c) for c in qc.calibration]
        else:
            jobs.append((v, None))
    return jobs

"""quantize: onnxruntime int8 (dynamic; static QDQ calibrated on training data with MinMax, Entropy or
Percentile), int4 weight-only (MatMulNBits) and fp16 (for the CUDA provider) from the final student,
the same int8 and int4 after quantization-aware distillation (the student trained against the fp32
teacher as its quantized graph computes: qad-int8, qad-int4), and the teacher itself in dynamic int8
(the no-distillation bar; with quantize.qad.teacher, distilled into its own int8/int4 form too); each
variant's accuracy is measured by running it in onnxruntime on the validation and test splits."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from kdpipe.evaluation.evidence import damage, versus
from kdpipe.evaluation.scoring import evaluate_samples, onnx_predictor, score, torch_predictor
from kdpipe.progress import progress, say
from kdpipe.quantization import plan
from kdpipe.quantization.quantizers import (
    Int4,
    Int8,
    calibration_batches,
    dynamic_int8,
    int4_weight_only,
    op_counts,
    quiet_root_logger,
    static_int8,
    to_fp16,
)
from kdpipe.runtime.sessions import input_names, make_session, ort
from kdpipe.variants import QUANTIZED_TEACHER, Format, VariantRow, variant_name, variant_row

NAME = "quantize"
REQUIRES = ("distill", "prune")
SECTIONS = ("seed", "quantize", "export")
VERSION = 9  # dynamic int8 chosen by damage, activation MatMuls tried; QAD; a bounded int8 search; the no-KD
# student in int8 where KD did not pay


def run(ctx) -> dict:
    qc = ctx.cfg.quantize
    if not qc.enabled:
        say("[quantize] disabled in the config (quantize.enabled: false)")
        return {"skipped": "quantize.enabled is false", "variants": []}
    name = plan.source(qc.source, ctx.has("prune"))
    upstream = ctx.upstream("prune" if name == "pruned" else "distill")
    src_row = next(r for r in upstream["variants"] if r["variant"] == name)
    ort()  # clear error if the onnxruntime install is broken
    jobs = plan.jobs(qc)
    with tempfile.TemporaryDirectory() as tmp, quiet_root_logger():
        src = _prepare(ctx, name, src_row, Path(tmp))
        rows = _fused_row(ctx, src) + _copies(ctx, src, jobs)
        for r in rows:
            if "vs_source" not in r:  # (dynamic rows were compared while choosing their way)
                r["vs_source"] = versus(ctx.task.metric, src.evidence, r["_samples"], ctx.splits)
        search = None
        if qc.search:
            mixed, search = _accuracy_aware(ctx, rows, src)
            rows += [mixed] if mixed else []
        rows += _teacher_copies(ctx, src, jobs)
    for r in rows:
        _say_row(r, ctx.task.metric)
    return {"source": name, "source_metric": src_row["metric"], "variants": ctx.record_evidence(rows),
            **({"int8_search": search} if search else {})}


@dataclass
class _Source:
    """The model every copy is made from, exported once, and what the quantizers are given."""
    name: str  # student or pruned
    row: VariantRow
    tmp: Path
    fp32: Path  # its fp32 ONNX graph
    prepared: Path  # the same, through onnxruntime's pre-processing (shapes inferred)
    evidence: dict  # its per-sample evidence on validation and test: what every copy is compared with
    fused: Path  # onnxruntime's fused graph, where `fusions` ran
    fusions: dict | None
    calib_feeds: list  # static calibration inputs, fed by input name
    calibration_samples: int
    static_ops: list | None  # op types to quantize (None: every one the quantizer supports)
    dynamic_ops: list | None


def _prepare(ctx, name: str, row: VariantRow, tmp: Path) -> _Source:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    qc, task, splits = ctx.cfg.quantize, ctx.task, ctx.splits
    model, _ = task.load(ctx.file(row["path"]), f"{name} model")
    fp32, prepared = tmp / "fp32.onnx", tmp / "prepared.onnx"
    task.export_onnx(model, ctx.file(row["path"]), fp32, ctx.cfg.export.opset, splits)
    fused = ctx.out / f"{variant_name(name, 'fp32-fused')}.onnx"
    fusions = task.fuse(fp32, fused, model)  # None where the model type has nothing to fuse
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    names = input_names(prepared)
    calib = calibration_batches(splits.train.x, qc.calibration_samples, ctx.cfg.seed)
    return _Source(name, row, tmp, fp32, prepared, _evidence_of(task, splits, fp32), fused, fusions,
                   [task.feeds(names, b) for b in calib], sum(map(len, calib)), qc.op_types or task.quantize_op_types,
                   qc.op_types or (task.quantize_op_types and task.quantize_op_types + task.dynamic_extra_ops))


def _fused_row(ctx, src: _Source) -> list[VariantRow]:
    """The fp32 graph with onnxruntime's fusions, where it has some for this model."""
    if not src.fusions:
        return []
    say(f"[quantize] fused operators: {', '.join(f'{k} {v}' for k, v in src.fusions.items())}")
    return [_row(ctx, ctx.task, ctx.splits, src.fused, src.fused.stem, "onnx-fp32", src.row, src.name,
                 {"method": "fusion", "calibration": None, "per_channel": False, "reduce_range": False,
                  "fusions": src.fusions, "ops": op_counts(src.fused)})]


def _copies(ctx, src: _Source, jobs: list[tuple[str, str | None]]) -> list[VariantRow]:
    """One copy of the source per job. Dynamic int8 is made from the plain and, where fusions ran, from
    the fused graph: which is faster depends on the model and CPU, so both are measured. Static QDQ
    starts from the plain graph only (its calibrators cannot type the fused contrib ops)."""
    qc, task, splits = ctx.cfg.quantize, ctx.task, ctx.splits
    if src.fusions:
        jobs = [j for job in jobs for j in ([job, ("dynamic-fused", None)] if job[0] == "dynamic" else [job])]
    rows: list[VariantRow] = []
    for kind, calibration in progress(jobs, desc="quantize", quiet=ctx.quiet, unit="variant"):
        name = variant_name(src.name, kind, calibration)
        out = ctx.out / f"{name}.onnx"
        if kind == "dynamic":
            rows.append(_dynamic_variant(ctx, src.prepared, out, name, src.dynamic_ops, src.row, src.name,
                                         {"fused": False}, src.evidence))
        elif kind == "dynamic-fused":  # a fused Attention node holds the Q/K/V weights: dynamic int8 can quantize it
            rows.append(_dynamic_variant(ctx, src.fused, out, name, src.dynamic_ops and src.dynamic_ops + ["Attention"],
                                         src.row, src.name, {"fused": True}, src.evidence))
        elif kind == "int4":
            rows += _int4_variant(ctx, src.fp32, out, name, src.row, src.name)
        elif kind.startswith("qad-"):
            rows.append(_qad_variant(ctx, kind, src.row, src.name, src.evidence, src.tmp, src.dynamic_ops))
        else:
            if kind == "static":
                static_int8(src.prepared, out, Int8(qc.per_channel is True, qc.reduce_range is not False,
                                                    src.static_ops), calibration, src.calib_feeds)
            else:
                to_fp16(src.fp32, out)
            rows.append(_row(ctx, task, splits, out, name, "onnx-fp16" if kind == "fp16" else "onnx-int8", src.row,
                             src.name, {"method": kind, "calibration": calibration,
                                        **({"calibration_samples": src.calibration_samples}
                                           if kind == "static" else {}),
                                        "per_channel": qc.per_channel is True,
                                        "reduce_range": kind == "static" and qc.reduce_range is not False,
                                        "fused": False, "ops": op_counts(out)}))
    return rows


def _teacher_copies(ctx, src: _Source, jobs) -> list[VariantRow]:
    """The teacher quantized without distillation (the bar every report shows), with
    quantize.qad.teacher the teacher distilled into its own quantized form, and where KD did not pay
    the student trained without it, in int8."""
    qc, rows, teacher = ctx.cfg.quantize, _baseline_copy(ctx, src.tmp, src.dynamic_ops), None
    if qc.teacher:
        teacher = _teacher_fp32(ctx, src.tmp)
        rows.append(_quantized_teacher(ctx, teacher, qc, src.dynamic_ops))
    if qc.qad.teacher:
        t_row, _, _, t_evidence = teacher or _teacher_fp32(ctx, src.tmp)
        rows += [_qad_variant(ctx, kind, t_row, "teacher", t_evidence, src.tmp, src.dynamic_ops)
                 for kind, _ in jobs if kind.startswith("qad-")]
    return rows


def _say_row(r: VariantRow, metric) -> None:
    vs = r["vs_source"]
    say(f"[quantize] {r['variant']}: {r['size_bytes']} bytes, test {metric.name} "
        f"{r['metric']['test']:.2f}{metric.unit}; against its fp32 source on validation: "
        f"{vs['agreement_val']}% of answers kept, {vs['damage_val']:.2f} broken, net {vs['drop_val']:+.2f} "
        f"(95% {vs['drop_val_ci'][0]:+.2f} to {vs['drop_val_ci'][1]:+.2f})")


def _evidence_of(task, splits, onnx_path: Path) -> dict:
    """Per-sample evidence of an fp32 ONNX model on validation and test, in onnxruntime."""
    sess, _ = make_session(onnx_path, "cpu")
    predict = onnx_predictor(sess, task.feeds)
    return {name: evaluate_samples(predict, split, task.metric)[1] for name, split in (("val", splits.val),
                                                                                        ("test", splits.test))}


def _accuracy_aware(ctx, rows, src: _Source):
    """When the least damaged int8 variant still breaks more than export.max_drop against its fp32 source
    on validation (evidence.versus: answers it broke count even where others it fixed cancel them in
    its accuracy), keep its most sensitive nodes in float until it does not (runtime.int8_search).
    Returns (the mixed variant or None, the search's record or None when no search was needed)."""
    src_evidence, src_row, source, prepared = src.evidence, src.row, src.name, src.prepared
    calib_feeds, static_ops, dyn_ops = src.calib_feeds, src.static_ops, src.dynamic_ops
    from kdpipe.quantization.int8_search import exclusion_names, quantizable_nodes, search

    task, splits, metric = ctx.task, ctx.splits, ctx.task.metric
    budget = ctx.cfg.export.max_drop
    int8 = [r for r in rows if r["format"] == "onnx-int8" and not r["quantization"].get("fused")
            and r["quantization"]["method"] in ("dynamic", "static")]  # what the search can remake
    if not int8:
        return None, None
    best = min(int8, key=lambda r: (r["vs_source"]["damage_val"], r["vs_source"]["drop_val"]))
    lost, broke = best["vs_source"]["drop_val"], best["vs_source"]["damage_val"]
    if broke <= budget:
        return None, None
    qi = best["quantization"]
    ops = dyn_ops if qi["method"] == "dynamic" else static_ops

    def quantize(out, exclude):  # as the variant it starts from, with `exclude` kept in float
        s = Int8(qi["per_channel"] is True, qi["reduce_range"] is True, ops, exclusion_names(exclude),
                 activation_matmuls=qi.get("activation_matmuls") is True)
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
    res = search(prepared, quantize, nodes, task.feeds, splits.val.x, val_metric, lambda v: v["damage"] <= budget,
                 per_channel=qi["per_channel"] is True, reduce_range=qi["reduce_range"] is True,
                 minutes=ctx.cfg.quantize.search_minutes)
    top = sorted(res.sensitivity.items(), key=lambda kv: -kv[1])[:10]
    record = {"from": best["variant"], "lost": round(lost, 4), "damage": broke, "budget": budget,
              "nodes": res.nodes,
              "kept_float": res.kept_float, "tried": res.tried, "most_sensitive": dict(top),
              "found": res.val is not None, "seconds": res.seconds, "out_of_time": res.out_of_time,
              "ranking": res.ranking}
    if res.val is None:
        spent = (
            f" in the {ctx.cfg.quantize.search_minutes:g} minutes of quantize.search_minutes" if res.out_of_time else ""
        )
        say(f"[quantize] no mix of int8 and float nodes is within {budget:g} of {source}{spent}: nothing added")
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
    settings = _int4_settings(ctx.cfg.quantize)
    matmuls = int4_weight_only(fp32, out, settings)
    if not matmuls:
        out.unlink(missing_ok=True)
        say(f"[quantize] {name}: the graph has no weight matrix (MatMul, Gemm, embedding) for int4; left out")
        return []
    return [_row(ctx, ctx.task, ctx.splits, out, name, "onnx-int4", src_row, source,
                 {**_int4_info("int4-weight-only", settings, matmuls), "fused": False, "ops": op_counts(out)})]


def _int4_settings(qc) -> Int4:
    return Int4(qc.int4_block_size, qc.int4_accuracy_level, embeddings=qc.int4_embeddings)


def _int4_info(method: str, settings: Int4, matmuls: int) -> dict:
    """What a row records of an int4 copy (post-training or QAD): its settings and weights quantized."""
    return {"method": method, "calibration": None, "per_channel": False, "reduce_range": False,
            "block_size": settings.block_size, "accuracy_level": settings.accuracy_level,
            "embeddings": settings.embeddings, "weight_matrices": matmuls}


def _teacher_fp32(ctx, tmp: Path, name: str = "teacher") -> tuple[VariantRow, Path, Path, dict]:
    """A distill-stage model's row (the teacher's, or the no-KD baseline's), its fp32 graph, that graph
    prepared for the quantizer, and its evidence."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    task, splits = ctx.task, ctx.splits
    t_row = ctx.upstream_row("distill", name)
    model, _ = task.load(ctx.file(t_row["path"]), f"{name} model")
    fp32, prepared = tmp / f"{name}-fp32.onnx", tmp / f"{name}-prepared.onnx"
    task.export_onnx(model, ctx.file(t_row["path"]), fp32, ctx.cfg.export.opset, splits)
    del model
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    return t_row, fp32, prepared, _evidence_of(task, splits, fp32)


def _baseline_copy(ctx, tmp: Path, op_types) -> list[VariantRow]:
    """Where KD did not pay on validation (the student trained without KD scores better there), that
    student's dynamic int8 copy too: a candidate for the bundle like the distilled student's copies,
    made as the quantized teacher is (_quantized_teacher)."""
    rows = {r["variant"]: r for r in ctx.upstream("distill")["variants"]}
    if "baseline" not in rows or not ctx.task.metric.worse_by(rows["baseline"]["metric"]["val"],
                                                            rows["student"]["metric"]["val"]) > 0:
        return []
    name = variant_name("baseline", "dynamic")
    say(f"[quantize] the student trained without KD is ahead on validation: {name} too")
    return [_quantized_teacher(ctx, _teacher_fp32(ctx, tmp, "baseline"), ctx.cfg.quantize, op_types, name)]


def _quantized_teacher(ctx, teacher: tuple, qc, op_types, name: str = QUANTIZED_TEACHER) -> VariantRow:
    """What a user gets without distillation: the teacher itself in dynamic int8, plain and per-channel
    weights, with and without the activation MatMuls, the least damaged kept, in the students' weight
    bits. Every report shows it beside the students, measured the same way."""
    t_row, _, prepared, evidence = teacher
    # the bar: the least damaged of the ways dynamic int8 can be made (as a user of optimum or onnxruntime
    # would try them); weight bits as the students' (quantize.reduce_range), so that no int8 bundle
    # kdpipe can ship saturates on CPUs without VNNI unless told otherwise
    auto = qc.model_copy(update={"per_channel": "auto", "activation_matmuls": "auto"})
    return _dynamic_variant(ctx, prepared, ctx.out / f"{name}.onnx", name, op_types, t_row, t_row["variant"],
                            {"no_distillation": True}, evidence, auto)


def _qad_variant(ctx, kind: str, src_row: VariantRow, source: str, src_evidence: dict, tmp: Path,
                 dyn_ops) -> VariantRow:
    """Quantization-aware distillation of `source` (training.qad), then the trained weights exported
    and quantized as the post-training variant is: int8 dynamic with per-channel weights, or int4
    weight-only. Records the training and how many validation answers the exported graph shares with
    the fake-quantized PyTorch model it was trained as."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from kdpipe.evaluation.evidence import agreement, answer_mask
    from kdpipe.training import qad
    from kdpipe.training.fake_quant import Int4Scheme, Int8Scheme, emulated
    from kdpipe.training.loop import seed_everything

    cfg, qc, task, splits = ctx.cfg, ctx.cfg.quantize, ctx.task, ctx.splits
    name = variant_name(source, kind)
    model, spec = task.load(ctx.file(src_row["path"]), f"{source} model")
    if cfg.distill.freeze_embeddings:  # as distill trained it: the token table stays as it was
        from kdpipe.models.hf import freeze_token_embeddings

        freeze_token_embeddings(model)
    t_row = ctx.upstream_row("distill", "teacher")
    teacher, _ = task.load(ctx.file(t_row["path"]), "teacher model")
    reduce_range = qc.reduce_range if isinstance(qc.reduce_range, bool) else True  # auto: the safe 7 bits
    if kind == "qad-int8":
        scheme = Int8Scheme.for_ops(dyn_ops, per_channel=True, reduce_range=reduce_range,
                                    learn_scales=qc.qad.learn_scales)
    else:
        int4 = _int4_settings(qc)
        scheme = Int4Scheme(int4.block_size, int4.accuracy_level, int4.embeddings)
    trained = ctx.upstream("distill").get("training", {}).get("student", {}).get("history")
    schedule = qad.schedule_of(cfg, seed=cfg.seed + 7, distill_epochs=len(trained) if trained else None)
    seed_everything(cfg.seed + 7)  # dropout draws the same whether quantize runs alone or after distill
    res = qad.train(model, teacher, scheme, task, cfg, splits, schedule, checkpoint=ctx.checkpoint(name),
                    desc=f"{name} (QAD)", quiet=ctx.quiet)
    del teacher
    with emulated(model, scheme):
        _, fake = evaluate_samples(torch_predictor(model), splits.val, task.metric)
    folder = tmp / name
    folder.mkdir()
    saved = task.save(model.cpu(), folder, name, spec, splits)
    fp32, out = folder / "fp32.onnx", ctx.out / f"{name}.onnx"
    task.export_onnx(model, saved, fp32, cfg.export.opset, splits)
    if kind == "qad-int8":
        prepared = folder / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        dynamic_int8(prepared, out, Int8(True, reduce_range, dyn_ops))
        info = {"method": "qad-dynamic", "calibration": None, "per_channel": True, "reduce_range": reduce_range,
                "activation_matmuls": False, "learned_scales": qc.qad.learn_scales}
    else:
        info = _int4_info("qad-int4-weight-only", int4, int4_weight_only(fp32, out, int4))
    fmt: Format = "onnx-int8" if kind == "qad-int8" else "onnx-int4"
    row = _row(ctx, task, splits, out, name, fmt, src_row, source,
               {**info, "fused": False, "ops": op_counts(out), "qad": res.record(schedule)})
    row["vs_source"] = versus(task.metric, src_evidence, row["_samples"], splits)
    exported = row["_samples"]["val"]
    if getattr(model, "trim", False):  # the PyTorch model cut each batch's trailing padding: so does the graph here
        from kdpipe.data.splits import trim_padding

        graph = onnx_predictor(make_session(out, "cpu")[0], task.feeds)
        _, exported = evaluate_samples(lambda x: graph(trim_padding(x)), splits.val, task.metric)
    row["quantization"]["qad"]["export_agreement_val"] = agreement(fake, exported, answer_mask(splits.val, exported))
    say(f"[quantize] {name}: {res.seconds:.0f} s of QAD ({schedule.epochs} epochs); the exported graph gives "
        f"{row['quantization']['qad']['export_agreement_val']}% of the fake-quantized model's validation answers")
    return row


def _dynamic_variant(ctx, src: Path, out: Path, name: str, op_types, src_row: VariantRow, source: str, info: dict,
                     src_evidence: dict, qc=None) -> VariantRow:
    """Dynamic int8 of `src`, measured. Where quantize.per_channel, reduce_range or activation_matmuls is
    auto, each way is made and the least damaged against the fp32 source on validation kept: fewest
    answers broken, then most answers kept, then the better metric (a copy whose changed answers cancel
    in its accuracy is still a damaged copy); last ties go to plain weights (the faster on most CPUs),
    7-bit (which no CPU's kernels can overflow) and weight MatMuls only. What each way scored is recorded."""
    qc = qc or ctx.cfg.quantize
    task, splits = ctx.task, ctx.splits
    channels = (False, True) if qc.per_channel == "auto" else (qc.per_channel is True,)
    ranges = (True, False) if qc.reduce_range == "auto" else (qc.reduce_range is True,)
    matmuls = (False, True) if qc.activation_matmuls == "auto" else (qc.activation_matmuls is True,)
    tried: dict[tuple, tuple[Path, VariantRow]] = {}
    made: dict[tuple, dict] = {}
    for pc in channels:
        for rr in ranges:
            for am in matmuls:
                key = (pc, rr, am)
                path = out.with_name(f"{out.stem}-{len(made)}.onnx")
                dynamic_int8(src, path, Int8(pc, rr, op_types, activation_matmuls=am))
                ops = op_counts(path)
                if am and qc.activation_matmuls is not True and ops == made.get((pc, rr, False)):
                    path.unlink()  # the graph has no MatMul between activations: the same copy again
                    continue
                made[key] = ops
                row = _row(ctx, task, splits, path, name, "onnx-int8", src_row, source,
                           {"method": "dynamic", "calibration": None, "per_channel": pc, "reduce_range": rr,
                            "activation_matmuls": am, **info, "ops": ops})
                row["vs_source"] = versus(task.metric, src_evidence, row["_samples"], splits)
                tried[key] = (path, row)
    best = least_damaged({key: row for key, (_, row) in tried.items()}, task.metric.higher_is_better)
    path, row = tried[best]
    path.replace(out)
    for key, (other, _) in tried.items():
        if key != best:
            other.unlink()
    row.update(path=ctx.rel(out))
    if len(tried) > 1:
        varied = [len({k[i] for k in tried}) > 1 for i in range(3)]  # the ways that were tried both ways
        row["quantization"]["candidates"] = {
            _label(k, *varied): {
                "val": r["metric"]["val"], "damage_val": r["vs_source"]["damage_val"],
                "agreement_val": r["vs_source"]["agreement_val"]}
            for k, (_, r) in tried.items()}
    return row


def least_damaged(candidates: dict[tuple, VariantRow], higher_is_better: bool) -> tuple:
    """The key of the candidate (ways of making one copy, keyed by their (per-channel, 7-bit, activation
    MatMuls) settings) that broke the fewest answers of its fp32 source on validation, then kept the
    most, then scored best; last ties go to the first ways (plain, 7-bit, weight MatMuls only)."""
    sign = 1 if higher_is_better else -1

    def order(key):
        vs, val = candidates[key]["vs_source"], candidates[key]["metric"]["val"]
        return (vs["damage_val"], -(vs["agreement_val"] or 0.0), -sign * val, key[0], not key[1], key[2])

    return min(candidates, key=order)


def _label(key: tuple[bool, bool, bool], channels: bool, ranges: bool, matmuls: bool) -> str:
    """A dynamic int8 candidate's name in the record, naming only the ways that were tried: plain or
    per-channel weights, 7 or 8 bits, weight MatMuls only or activation MatMuls too."""
    pc, rr, am = key
    parts = ([("per-channel" if pc else "plain")] if channels else []) + \
        ([("7-bit" if rr else "8-bit")] if ranges else []) + \
        ([("activation matmuls" if am else "weight matmuls")] if matmuls else [])
    return ", ".join(parts)


def _row(ctx, task, splits, path: Path, name: str, fmt: Format, src_row: VariantRow, source: str,
         info: dict) -> VariantRow:
    """A variant measured in onnxruntime on the validation and test splits."""
    sess, _ = make_session(path, "cpu")
    predict = onnx_predictor(sess, task.feeds)
    return variant_row(name, fmt, path, ctx.rel(path), src_row["params"],
                       score(predict, splits, task.metric, ctx.teacher_reference()), NAME, source=source,
                       quantization=info)



"""export: fp32 ONNX of every torch variant (dynamic batch axis), checked against torch on real
validation data, and the deployable bundle (chosen model + kdpipe.json) that plain onnxruntime loads."""

from __future__ import annotations

import os

import numpy as np

from kdpipe.errors import ConfigError
from kdpipe.evaluation import logits, onnx_predictor, score, torch_predictor
from kdpipe.progress import progress, say
from kdpipe.runtime.onnx_convert import set_metadata
from kdpipe.runtime.sessions import make_session
from kdpipe.variants import variant_row

NAME = "export"
REQUIRES = ("distill", "prune", "quantize")
SECTIONS = ("export",)


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
        written[_label(rows[-1])] = out  # still in the staging folder, not yet at its recorded path
        say(f"[export] {name}: max |torch - onnx| = {parity[name]['max_abs_diff']:.2e}, "
            f"predictions agree on {parity[name]['agreement']:.2f}% of validation outputs")

    quantized = ctx.upstream("quantize")
    chosen = choose_bundle(cfg.export, rows + quantized["variants"], quantized, task.metric)
    source = chosen.get("source", chosen["variant"])
    source_row = next(r for r in torch_rows if r["variant"] == source)
    info = task.write_bundle(ctx.out / "bundle", written.get(_label(chosen)) or ctx.file(chosen["path"]),
                             _label(chosen), ctx.file(source_row["path"]), splits, chosen["metric"], cfg)
    say(f"[export] bundle: {_label(chosen)} -> {ctx.out.name}/bundle/ ({', '.join(sorted(os.listdir(ctx.out / 'bundle')))})")
    return {"variants": rows, "parity": parity, "bundle": {"path": f"{NAME}/bundle", "variant": info["variant"]}}


def check_parity(torch_predict, onnx_predict, x: np.ndarray) -> dict:
    """Max |difference| of the outputs and how often the arg-max (class, or token) agrees."""
    a, b = logits(torch_predict, x), logits(onnx_predict, x)
    return {
        "samples": int(len(x)),
        "max_abs_diff": float(np.abs(a - b).max()),
        "agreement": float((a.argmax(-1) == b.argmax(-1)).mean() * 100.0),
    }


def _label(row: dict) -> str:
    return row["variant"] if row["format"] != "onnx-fp32" else f"{row['variant']}-fp32"


def choose_bundle(ec, candidates: list[dict], quantized: dict, metric) -> dict:
    """auto: the best int8 variant on validation if it is within max_drop (metric units) of its fp32
    source, else the fp32 source."""
    by_label = {_label(r): r for r in candidates}
    if ec.bundle != "auto":
        if ec.bundle not in by_label:
            raise ConfigError(f"export.bundle {ec.bundle!r}: no such variant (have: {', '.join(sorted(by_label))})")
        return by_label[ec.bundle]
    source = quantized.get("source") or ("pruned" if "pruned-fp32" in by_label else "student")
    fp32 = by_label[f"{source}-fp32"]
    int8 = [r for r in candidates if r["format"] == "onnx-int8"]
    if int8:
        sign = 1 if metric.higher_is_better else -1
        best = max(int8, key=lambda r: (sign * r["metric"]["val"], -r["size_bytes"]))
        if metric.worse_by(fp32["metric"]["val"], best["metric"]["val"]) <= ec.max_drop:
            return best
    return fp32

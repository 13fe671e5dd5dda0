"""export: fp32 ONNX of every torch variant (dynamic batch axis), checked against torch on real
validation data, and the deployable bundle (chosen model + kdpipe.json) that plain onnxruntime loads."""

from __future__ import annotations

import numpy as np

from kdpipe.errors import ConfigError
from kdpipe.evaluation import evaluate, logits, onnx_predictor, torch_predictor
from kdpipe.models.checkpoint import load_model
from kdpipe.progress import progress, say
from kdpipe.runtime.onnx_convert import export_onnx
from kdpipe.runtime.sessions import make_session
from kdpipe.bundle import write_bundle
from kdpipe.variants import variant_row

NAME = "export"
REQUIRES = ("distill", "prune", "quantize")
SECTIONS = ("export",)


def run(ctx) -> dict:
    cfg, splits = ctx.cfg, ctx.splits
    torch_rows = ctx.upstream("distill")["variants"] + ctx.upstream("prune")["variants"]
    rows, parity, written = [], {}, {}
    for src in progress(torch_rows, desc="export", quiet=ctx.quiet, unit="model"):
        name = src["variant"]
        model, _ = load_model(ctx.file(src["path"]), f"{src['path']}")
        out = ctx.out / f"{name}.onnx"
        export_onnx(model, splits.input_shape, out, cfg.export.opset, {"kdpipe_variant": name})
        sess, _ = make_session(out, "cpu")
        onnx_pred = onnx_predictor(sess)
        parity[name] = check_parity(torch_predictor(model), onnx_pred, splits.val.x)
        rows.append(variant_row(name, "onnx-fp32", out, ctx.rel(out), src["params"], evaluate(onnx_pred, splits.val),
                                evaluate(onnx_pred, splits.test), NAME, source=name, parity=parity[name]))
        written[_label(rows[-1])] = out  # still in the staging folder, not yet at its recorded path
        say(f"[export] {name}: max |torch - onnx| = {parity[name]['max_abs_diff']:.2e}, "
            f"predictions agree on {parity[name]['agreement']:.2f}% of validation samples")

    candidates = rows + ctx.upstream("quantize")["variants"]
    chosen = choose_bundle(cfg.export, candidates, ctx.upstream("quantize"))
    distilled = ctx.upstream("distill")
    info = write_bundle(
        ctx.out / "bundle", written.get(_label(chosen)) or ctx.file(chosen["path"]),
        variant=_label(chosen), labels=distilled["labels"], input_shape=distilled["input_shape"],
        preprocessing=distilled["preprocessing"], metric=chosen["metric"], task=cfg.task,
    )
    say(f"[export] bundle: {_label(chosen)} -> {ctx.out.name}/bundle/ (model.onnx + kdpipe.json)")
    return {"variants": rows, "parity": parity, "bundle": {"path": f"{NAME}/bundle", "variant": info["variant"]}}


def check_parity(torch_predict, onnx_predict, x: np.ndarray) -> dict:
    a, b = logits(torch_predict, x), logits(onnx_predict, x)
    return {
        "samples": int(len(x)),
        "max_abs_diff": float(np.abs(a - b).max()),
        "agreement": float((a.argmax(1) == b.argmax(1)).mean() * 100.0),
    }


def _label(row: dict) -> str:
    return row["variant"] if row["format"] != "onnx-fp32" else f"{row['variant']}-fp32"


def choose_bundle(ec, candidates: list[dict], quantized: dict) -> dict:
    """auto: the best int8 variant on validation if within max_drop points of its fp32 source, else fp32."""
    by_label = {_label(r): r for r in candidates}
    if ec.bundle != "auto":
        if ec.bundle not in by_label:
            raise ConfigError(f"export.bundle {ec.bundle!r}: no such variant (have: {', '.join(sorted(by_label))})")
        return by_label[ec.bundle]
    source = quantized.get("source") or ("pruned" if "pruned-fp32" in by_label else "student")
    fp32 = by_label[f"{source}-fp32"]
    int8 = [r for r in candidates if r["format"] == "onnx-int8"]
    if int8:
        best = max(int8, key=lambda r: (r["metric"]["val"], -r["size_bytes"]))
        if fp32["metric"]["val"] - best["metric"]["val"] <= ec.max_drop:
            return best
    return fp32

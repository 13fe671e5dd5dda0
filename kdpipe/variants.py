"""One row per model variant: every stage describes what it made the same way, the report joins them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypedDict

Format = Literal["torch", "onnx-fp32", "onnx-int8", "onnx-fp16", "onnx-int4"]


class _Row(TypedDict):
    variant: str  # teacher, student, pruned, or a quantized name (variant_name)
    format: Format
    path: str  # relative to the run folder
    params: int
    size_bytes: int
    metric: dict  # evaluation.score: metric name, val, test and extras on test
    made_by: str  # the stage


class VariantRow(_Row, total=False):
    """What every stage records of each model it made (manifest `variants`), and all the report reads:
    the keys above always, these where the stage has them."""
    evidence: str  # per-sample evidence file (StageContext.record_evidence)
    source: str  # the torch model it was made from (export, quantize)
    parity: dict  # export: torch vs onnxruntime on validation inputs
    quantization: dict  # quantize: method, calibration, weights, ops
    vs_source: dict  # quantize: paired comparison with its fp32 source


QUANTIZED_TEACHER = "teacher-int8-dynamic"  # what a user gets without distillation: a row of every report


def variant_name(source: str, kind: str, calibration: str | None = None, mixed: bool = False) -> str:
    """The one way a made variant is named, by the quantize stage and by every name `export.bundle`
    may take: `<source>-fp32-fused`, `<source>-int8-dynamic`, `<source>-int8-dynamic-fused` (from the
    fused graph), `<source>-int8-static-<calibration>`, `<source>-fp16`, `<source>-int4` (weight-only),
    `<source>-int8-qad` and `<source>-int4-qad` (quantization-aware distillation), and
    `-mixed` after an int8
    name for its accuracy-aware form (some nodes kept in float)."""
    names = {"fp32-fused": "fp32-fused", "dynamic": "int8-dynamic", "dynamic-fused": "int8-dynamic-fused",
             "static": f"int8-static-{calibration}", "fp16": "fp16", "int4": "int4", "qad-int8": "int8-qad",
             "qad-int4": "int4-qad"}
    if kind not in names:
        raise ValueError(f"no variant kind {kind!r} (kinds: {', '.join(names)})")
    return f"{source}-{names[kind]}" + ("-mixed" if mixed else "")


def bundle_label(row: VariantRow) -> str:
    """A variant's name among the bundle candidates: torch models are exported, so the student's
    onnx-fp32 row is `student-fp32` (quantized rows keep their names)."""
    fp32 = row["format"] == "onnx-fp32" and "-fp32" not in row["variant"]
    return f"{row['variant']}-fp32" if fp32 else row["variant"]


def named_bundle(wanted: str, labels) -> str | None:
    """The variant `export.bundle` names among `labels` (bundle labels): the name itself, or a torch
    model's with `-fp32` (`student` is student-fp32); None where neither is there."""
    return next((n for n in (wanted, f"{wanted}-fp32") if n in labels), None)


def variant_row(variant: str, fmt: Format, path: Path, rel: str, params: int, score: dict, made_by: str,
                **extra) -> VariantRow:
    """`score`: evaluation.score's result (metric name, val, test and extras on test); `extra`: the
    optional keys of VariantRow, no others."""
    unknown = set(extra) - VariantRow.__optional_keys__
    if unknown:
        raise TypeError(f"variant_row: {', '.join(sorted(unknown))} not a key of VariantRow")
    path = Path(path)
    return {
        "variant": variant,
        "format": fmt,
        "path": rel,
        "params": int(params),
        # a model folder (transformers) counts its files, e.g. weights, config and tokenizer
        "size_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else path.stat().st_size,
        "metric": {k: v for k, v in score.items() if not k.startswith("_")},
        "made_by": made_by,
        **extra,  # VariantRow's optional keys
        # per-sample evidence (kdpipe.evaluation.evidence.Samples), written to a file by StageContext.record_evidence
        **({"_samples": score["_samples"]} if "_samples" in score else {}),
    }


"""One row per model variant: every stage describes what it made the same way, the report joins them."""

from __future__ import annotations

from pathlib import Path


def bundle_label(row: dict) -> str:
    """A variant's name among the bundle candidates: torch models are exported, so the student's
    onnx-fp32 row is `student-fp32` (quantized rows keep their names)."""
    fp32 = row["format"] == "onnx-fp32" and "-fp32" not in row["variant"]
    return f"{row['variant']}-fp32" if fp32 else row["variant"]


def variant_row(variant: str, fmt: str, path: Path, rel: str, params: int, score: dict, made_by: str,
                **extra) -> dict:
    """`score`: evaluation.score's result (metric name, val, test and extras on test)."""
    path = Path(path)
    return {
        "variant": variant,
        "format": fmt,  # torch | onnx-fp32 | onnx-int8 | onnx-fp16
        "path": rel,
        "params": int(params),
        # a model folder (transformers) counts its files, e.g. weights, config and tokenizer
        "size_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size,
        "metric": {k: v for k, v in score.items() if not k.startswith("_")},
        "made_by": made_by,
        **extra,
        # per-sample evidence (kdpipe.evidence.Samples), written to a file by StageContext.record_evidence
        **({"_samples": score["_samples"]} if "_samples" in score else {}),
    }


"""One row per model variant: every stage describes what it made the same way, the report joins them."""

from __future__ import annotations

from pathlib import Path

from kdpipe.evaluation import METRIC


def variant_row(variant: str, fmt: str, path: Path, rel: str, params: int, val: float, test: float,
                made_by: str, **extra) -> dict:
    return {
        "variant": variant,
        "format": fmt,  # torch | onnx-fp32 | onnx-int8 | onnx-fp16
        "path": rel,
        "params": int(params),
        "size_bytes": Path(path).stat().st_size,
        "metric": {"name": METRIC, "val": round(val, 4), "test": round(test, 4)},
        "made_by": made_by,
        **extra,
    }


def model_spec(section, splits) -> dict:
    """How to rebuild a model: its config entry plus what the data says (input shape, classes)."""
    return {
        "model": section.model,
        "params": dict(section.params),
        "input_shape": list(splits.input_shape),
        "num_classes": splits.num_classes,
    }

"""torch -> ONNX (fp32, dynamic batch axis), with model metadata an app can read back."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

if TYPE_CHECKING:
    from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, input_shape, path: Path, opset: int, metadata: dict | None = None) -> None:
    import torch  # here, not at the top: `kdpipe predict` reads the names above without paying torch's import

    model = model.cpu().eval()
    sample = torch.zeros(2, *input_shape)
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (sample,), str(tmp), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    if metadata:
        set_metadata(tmp, metadata)
    onnx.checker.check_model(str(tmp))
    tmp.replace(path)


def set_metadata(path: Path, metadata: dict) -> None:
    m = onnx.load(str(path))
    onnx.helper.set_model_props(
        m, {**{p.key: p.value for p in m.metadata_props}, **{k: str(v) for k, v in metadata.items()}}
    )
    onnx.save(m, str(path))

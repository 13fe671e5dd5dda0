"""kdpipe.bundle.folder: a bundle folder whose model file is damaged is one clear error."""

import json

import pytest

from kdpipe.bundle.folder import BUNDLE_JSON, load_bundle
from kdpipe.errors import ModelError

pytestmark = pytest.mark.fast


def test_a_truncated_model_file_is_a_clear_error(tmp_path):
    (tmp_path / BUNDLE_JSON).write_text(json.dumps({"model": "model.onnx", "task": "classification"}))
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch" * 3)  # the start of an ONNX file, cut short
    with pytest.raises(ModelError, match=r"model.onnx is not a valid ONNX model"):
        load_bundle(tmp_path)


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    (tmp_path / BUNDLE_JSON).write_text(json.dumps({"model": "model.onnx", "task": "classification"}))
    with pytest.raises(ModelError, match=r"model.onnx is missing"):
        load_bundle(tmp_path)

"""kdpipe.bundle.folder: a bundle folder whose model file is damaged is one clear error; a CSV of texts
is read as a CSV."""

import json

import pytest

from kdpipe.bundle.folder import BUNDLE_JSON, load_bundle, read_texts
from kdpipe.errors import DataError, ModelError

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


TRAINING_CSV = ('text,label\n"A list holds items, in order.",built-in-types\n'
                '"A quoted text\nover two lines",statements\n')


@pytest.mark.parametrize("content, suffix, texts", [
    # the training data's own layout: the header is no text, the label does not leak into the input
    (TRAINING_CSV, ".csv", ["A list holds items, in order.", "A quoted text\nover two lines"]),
    ("label,text\nx,First text\ny,Second text\n", ".csv", ["First text", "Second text"]),  # any column order
    ('text\nOne text\n"Two, with a comma"\n', ".csv", ["One text", "Two, with a comma"]),  # one column, header
    ("One text\nTwo text\n", ".csv", ["One text", "Two text"]),  # one column, no header: every row a text
    ("text\tlabel\nA tab-separated text\tx\n", ".tsv", ["A tab-separated text"]),
])
def test_a_csv_of_texts_is_read_as_a_csv(tmp_path, content, suffix, texts):
    path = tmp_path / f"in{suffix}"
    path.write_text(content)
    assert read_texts(path, None, {"text_column": "text"}) == texts


def test_the_text_column_is_the_recorded_one_or_the_one_asked_for(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,sentence,label\n1,The first,x\n2,The second,y\n")
    assert read_texts(path, None, {"text_column": "sentence"}) == ["The first", "The second"]
    assert read_texts(path, None, {}, "sentence") == ["The first", "The second"]
    with pytest.raises(DataError, match=r"3 columns and none named 'text'.*--text-column \(columns: id, sentence"):
        read_texts(path, None, {"text_column": "text"})
    with pytest.raises(DataError, match=r"no column 'body' \(--text-column\); its columns: id, sentence, label"):
        read_texts(path, None, {}, "body")

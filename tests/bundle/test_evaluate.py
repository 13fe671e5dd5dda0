"""`kdpipe evaluate` on bundles the tiny runs shipped: a held-out labelled file scored as the report
scores (metric, interval, per class, confusion), two bundles compared on the same samples, and bad
inputs as one line each. (Text bundles: tests/tasks/test_text_tasks.py.)"""

import json
import subprocess
import sys

import numpy as np
import pytest


def _kdpipe(*args):
    return subprocess.run([sys.executable, "-m", "kdpipe", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Digits the tiny run never trained on (its data.limit keeps the first 600 of 1,797), labelled."""
    from sklearn.datasets import load_digits

    d = load_digits()
    path = tmp_path_factory.mktemp("digits") / "held-out.npz"
    np.savez(path, x=d.images[1000:1400].reshape(-1, 1, 8, 8), y=d.target[1000:1400])
    return path, d.target[1000:1400]


def test_a_classifier_is_scored_on_a_labelled_file_as_predict_answers(tiny_run, digits):
    path, y = digits
    bundle = tiny_run / "export" / "bundle"
    r = _kdpipe("evaluate", str(bundle), str(path), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    mine = result["bundles"][0]
    answers = [json.loads(line)["label"] for line in _kdpipe("predict", str(bundle), str(path), "--json").stdout
               .splitlines()]
    right = np.mean([a == str(t) for a, t in zip(answers, y)]) * 100
    assert result["samples"] == 400 and mine["value"] == pytest.approx(right, abs=1e-6)
    assert mine["ci"][0] <= mine["value"] <= mine["ci"][1] and mine["ci"][1] - mine["ci"][0] > 1
    matrix = np.asarray(mine["confusion"]["matrix"])
    assert matrix.sum() == 400 and np.trace(matrix) == round(right * 4)
    counts = {c["label"]: c["count"] for c in mine["per_class"]}
    assert counts == {str(k): int((y == k).sum()) for k in range(10)}
    text = _kdpipe("evaluate", str(bundle), str(path)).stdout
    assert f"{mine['value']:.2f}%" in text and "confusion matrix (rows: true label" in text


def test_two_bundles_are_compared_on_the_same_samples(tiny_run, digits, tmp_path):
    """The same bundle twice cannot be told apart; the quantized teacher against the student: whichever
    the paired interval shows, said with it."""
    import shutil

    path, _ = digits
    bundle = tiny_run / "export" / "bundle"
    r = _kdpipe("evaluate", str(bundle), str(path), "--vs", str(bundle), "--json")
    v = json.loads(r.stdout)["versus"]
    assert v["better_by"] == 0 and v["same_answers"] == 100.0 and "cannot be told apart on 400 samples" in v["verdict"]
    other = tmp_path / "teacher-bundle"  # the quantized teacher in the bundle's folder layout
    shutil.copytree(bundle, other)
    shutil.copy(tiny_run / "quantize" / "teacher-int8-dynamic.onnx", other / "model.onnx")
    info = json.loads((other / "kdpipe.json").read_text())
    (other / "kdpipe.json").write_text(json.dumps({**info, "variant": "teacher-int8-dynamic"}))
    result = json.loads(_kdpipe("evaluate", str(bundle), str(path), "--vs", str(other), "--json").stdout)
    mine, theirs = (b["value"] for b in result["bundles"])
    v = result["versus"]
    assert v["better_by"] == pytest.approx(mine - theirs, abs=1e-6) and v["ci"][0] <= v["better_by"] <= v["ci"][1]
    said = "is better" if v["ci"][0] > 0 else "is worse" if v["ci"][1] < 0 else "cannot be told apart"
    assert said in v["verdict"]


def test_a_causal_lm_bundle_is_scored_by_perplexity(lm_runs, tmp_path):
    from kdpipe.data.registry import load_texts

    bundle = lm_runs["causal-lm"] / "export" / "bundle"
    texts = load_texts("builtin:stdlib-sentences")[:40]  # another source than the run's pydoc topics
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    r = _kdpipe("evaluate", str(bundle), str(tmp_path / "t.jsonl"), "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)["bundles"][0]
    assert json.loads(r.stdout)["metric"]["name"] == "perplexity" and b["tokens"] > 200
    assert b["ci"][0] <= b["value"] <= b["ci"][1] and 1 < b["value"] < 300  # better than chance over 300 tokens
    # predict's perplexity of one short text (one window) is evaluate's on a file of that text alone
    short = min(texts, key=len)
    one = _kdpipe("predict", str(bundle), "--text", short, "--json", "--max-new-tokens", "1")
    alone = json.loads(_kdpipe_one(bundle, tmp_path, short).stdout)["bundles"][0]
    assert json.loads(one.stdout)["perplexity"] == pytest.approx(alone["value"], rel=1e-4)


def _kdpipe_one(bundle, tmp_path, text):
    (tmp_path / "one.jsonl").write_text(json.dumps({"text": text}) + "\n")
    return _kdpipe("evaluate", str(bundle), str(tmp_path / "one.jsonl"), "--json")


def test_bad_inputs_are_one_line_each(tiny_run, lm_runs, digits, tmp_path):
    path, _ = digits
    bundle = tiny_run / "export" / "bundle"
    (tmp_path / "wrong.npz").write_bytes(b"not an npz")
    (tmp_path / "notes.docx").write_text("x")
    for args, said in (
        ([str(bundle), str(path), "--vs", str(lm_runs["causal-lm"] / "export" / "bundle")],
         "is a causal-lm bundle of texts"),
        ([str(bundle), str(tmp_path / "notes.docx")], "name the kind of data (csv:, jsonl:, npz:, folder:, text:)"),
        ([str(bundle), str(tmp_path / "wrong.npz")], "wrong.npz"),
        ([str(tmp_path), str(path)], "not a kdpipe bundle"),
    ):
        r = _kdpipe("evaluate", *args)
        assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_an_image_folder_of_some_classes_is_scored_by_class_name(tiny_run, tmp_path):
    """Class folders name the labels: a folder with 2 of the 10 classes maps onto the bundle's labels by
    name, as predict answers the same image files."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    files = []
    for label in (3, 7):
        (tmp_path / "pics" / str(label)).mkdir(parents=True)
        for i in np.flatnonzero(d.target[1000:] == label)[:8]:
            f = tmp_path / "pics" / str(label) / f"{i}.png"
            Image.fromarray(d.images[1000 + i].astype(np.uint8)).save(f)
            files.append((f, str(label)))
    bundle = tiny_run / "export" / "bundle"
    result = json.loads(_kdpipe("evaluate", str(bundle), str(tmp_path / "pics"), "--json").stdout)
    counts = {c["label"]: c["count"] for c in result["bundles"][0]["per_class"] if c["count"]}
    assert counts == {"3": 8, "7": 8}
    answers = [json.loads(line)["label"] for line in
               _kdpipe("predict", str(bundle), *[str(f) for f, _ in files], "--json").stdout.splitlines()]
    right = np.mean([a == want for a, (_, want) in zip(answers, files)]) * 100
    assert result["bundles"][0]["value"] == pytest.approx(right, abs=1e-6)

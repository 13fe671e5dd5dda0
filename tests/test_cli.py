"""The command line as a user meets it: help, show-config, errors (exit 2, one line), predict."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import write_config


def _kdpipe(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kdpipe", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "cmd", ["all", "distill", "prune", "quantize", "export", "benchmark", "report", "sweep", "show-config", "predict"]
)
def test_every_command_has_help(cmd):
    r = _kdpipe(cmd, "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout


def test_help_predict_and_config_errors_answer_without_importing_torch(tiny_run, tmp_path):
    """An app's `kdpipe predict` needs onnxruntime and numpy, --help nothing heavy, and a mistyped
    config key is reported before anything else loads: torch's import (2-3 s) is paid only by commands
    that train or export."""
    bundle = tiny_run / "export" / "bundle"
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 1, 8, 8), np.float32))
    (tmp_path / "bad.yaml").write_text("name: x\ndistll: {}\n")
    calls = [["all", "--help"], ["predict", str(bundle), str(tmp_path / "x.npz")], ["all", str(tmp_path / "bad.yaml")],
             ["distill", str(tmp_path / "bad.yaml")], ["sweep", str(tmp_path / "bad.yaml")]]
    code = f"import sys; from kdpipe.cli import main; print([main(a) for a in {calls!r}], 'torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[0, 0, 2, 2, 2] False"
    assert r.stderr.count("did you mean 'distill'") == 3


def test_show_config_prints_resolved_defaults(tiny_config):
    r = _kdpipe("show-config", str(tiny_config), "--set", "distill.alpha=0.25")
    assert r.returncode == 0
    assert "alpha: 0.25" in r.stdout and "calibration_samples:" in r.stdout


@pytest.mark.parametrize("overrides, text", [
    ({"distill.temperature": -1}, "distill.temperature"),
    ({"data.source": "npz:missing.npz"}, "missing.npz"),
    ({"distll": {}}, "did you mean 'distill'"),
    ({"teacher.model": "builtin:nope"}, "teacher.model 'builtin:nope'"),
    ({"teacher.weights": "nothere.safetensors"}, "nothere.safetensors"),
    *([({"device": "cuda"}, "device: cuda was asked for")] if not __import__("torch").cuda.is_available() else []),
])
def test_bad_input_is_one_line_exit_2_no_traceback_nothing_written(tmp_path, overrides, text):
    cfg = write_config(tmp_path, overrides)
    r = _kdpipe("all", str(cfg), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert text in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_predict_on_npz_csv_and_images(tiny_run, tmp_path):
    bundle = tiny_run / "export" / "bundle"
    info = json.loads((bundle / "kdpipe.json").read_text())
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "x.npz", x=d.images[:5].reshape(5, 1, 8, 8))
    (tmp_path / "x.csv").write_text("\n".join([",".join(f"p{i}" for i in range(64))] +
                                              [",".join(str(v) for v in row) for row in d.data[:3]]))
    Image.fromarray((d.images[0] * 16).astype(np.uint8)).save(tmp_path / "one.png")
    r = _kdpipe("predict", str(bundle), str(tmp_path / "x.npz"), str(tmp_path / "x.csv"), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 8 and all(row["label"] in info["labels"] for row in lines)
    r = _kdpipe("predict", str(bundle), str(tmp_path / "one.png"))
    assert r.returncode == 0 and r.stdout.count("\n") == 1
    r = _kdpipe("predict", str(bundle), str(tmp_path / "nope.npz"))
    assert r.returncode == 2 and "input file not found" in r.stderr


def test_bundle_runs_with_plain_onnxruntime(tiny_run):
    """What the README's app example does, without kdpipe."""
    import onnxruntime as ort
    from sklearn.datasets import load_digits

    folder = tiny_run / "export" / "bundle"
    info = json.loads((folder / "kdpipe.json").read_text())
    sess = ort.InferenceSession(str(folder / info["model"]), providers=["CPUExecutionProvider"])
    pre = info["preprocessing"]
    raw = load_digits().images[:4].reshape(4, 1, 8, 8).astype(np.float32)
    x = ((raw * pre["scale"] - pre["mean"]) / pre["std"]).astype(np.float32)
    logits = sess.run(None, {info["input"]["name"]: x})[0]
    assert logits.shape == (4, len(info["labels"]))
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["kdpipe"])["labels"] == info["labels"]


def test_predict_reads_json_stdin_and_answers_with_the_top_k(tiny_run, tmp_path):
    """The Node app's input format ({"inputs": [...]}) and its --json fields (label, probability, top,
    logits); `-` reads JSON or CSV from stdin; --top-k prints the k most likely labels."""
    bundle = tiny_run / "export" / "bundle"
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "x.npz", x=d.images[:4].reshape(4, 1, 8, 8))
    (tmp_path / "x.json").write_text(json.dumps({"inputs": d.images[:4].reshape(4, 1, 8, 8).tolist()}))
    csv = "\n".join(",".join(str(v) for v in row) for row in d.data[:4])  # headerless, flat rows
    base = [
        json.loads(x) for x in _kdpipe("predict", str(bundle), str(tmp_path / "x.npz"), "--json").stdout.splitlines()
    ]
    for args, stdin in (([str(tmp_path / "x.json")], None), (["-"], (tmp_path / "x.json").read_text()), (["-"], csv)):
        r = subprocess.run([sys.executable, "-m", "kdpipe", "predict", str(bundle), *args, "--json"], input=stdin,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        rows = [json.loads(x) for x in r.stdout.splitlines()]
        assert [x["label"] for x in rows] == [x["label"] for x in base] and rows[0]["input"] == (
            "stdin" if args == ["-"] else str(tmp_path / "x.json"))
    row = base[0]
    assert set(row) == {"input", "index", "label", "probability", "top", "logits"} and len(row["top"]) == 3
    z = np.array(row["logits"], np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert [t["probability"] for t in row["top"]] == pytest.approx(sorted(p, reverse=True)[:3], abs=1e-5)
    assert row["top"][0] == {"label": row["label"], "probability": row["probability"]}
    r = _kdpipe("predict", str(bundle), str(tmp_path / "x.npz"), "--top-k", "2")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 4, r.stderr
    # name, 2 x (label, probability), the most likely first
    assert all(len(line.split("\t")) == 5 for line in lines) and lines[0].split("\t")[1] == base[0]["label"]


def test_predict_says_which_inputs_a_bundle_takes(tiny_run):
    """The repository's example inputs on a bundle they do not fit, and no input at all: one line each."""
    bundle = tiny_run / "export" / "bundle"
    examples = Path(__file__).parent.parent / "apps" / "examples"
    for args, said in (([str(examples / "mnist-digits.json")], "the model expects (1, 8, 8)"),
                       ([str(examples / "texts.txt")], "is not an input this bundle reads: .npz, .csv, .json"),
                       (["--text", "hello"], "takes arrays, not text"), ([], "give input files, - to read stdin")):
        r = _kdpipe("predict", str(bundle), *args)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr

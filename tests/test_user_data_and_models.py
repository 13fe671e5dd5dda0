"""Users' own data (CSV, image folders) and teacher checkpoints, end to end; the README's app code."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import run_cli, write_config

FAST = {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"], "data.limit": None}


def test_csv_source_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 5))
    labels = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    rows = ["a,b,c,d,e,answer"] + [",".join(f"{v:.4f}" for v in r) + f",{lab}" for r, lab in zip(x, labels)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    cfg = write_config(tmp_path, {**FAST, "data.source": f"csv:{tmp_path / 'd.csv'}", "data.label_column": "answer",
                                  "teacher.model": "builtin:mlp", "teacher.params": {"hidden": [32]}})
    assert run_cli("all", str(cfg), "-q") == 0
    info = json.loads((tmp_path / "run" / "export" / "bundle" / "kdpipe.json").read_text())
    assert info["labels"] == ["no", "yes"] and info["preprocessing"]["feature_names"] == list("abcde")
    r = subprocess.run([sys.executable, "-m", "kdpipe", "predict", str(tmp_path / "run" / "export" / "bundle"),
                        str(tmp_path / "d.csv")], capture_output=True, text=True)
    predicted = [line.split("\t")[1] for line in r.stdout.splitlines()]
    assert r.returncode == 0 and np.mean(np.array(predicted) == labels) > 0.8  # label column ignored, names kept


def test_image_folder_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    for cls, level in (("dark", 40), ("light", 200)):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(30):
            arr = np.clip(rng.normal(level, 30, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "img" / cls / f"{i}.png")
    cfg = write_config(tmp_path, {**FAST, "data.source": f"folder:{tmp_path / 'img'}",
                                  "teacher.params": {"channels": [4], "hidden": 16}})
    assert run_cli("all", str(cfg), "-q") == 0
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert next(r for r in report["rows"] if r["variant"] == "teacher")["metric"]["value"] > 90


def test_teacher_weights_are_loaded_not_trained(tmp_path, tiny_run):
    state = load_file(str(tiny_run / "distill" / "teacher.safetensors"))
    torch.save(state, tmp_path / "teacher.pt")
    expected = next(r for r in json.loads((tiny_run / "manifest.json").read_text())["stages"]["distill"]["outputs"]
                    ["variants"] if r["variant"] == "teacher")["metric"]
    for path in (tiny_run / "distill" / "teacher.safetensors", tmp_path / "teacher.pt"):
        cfg = write_config(tmp_path, {"teacher.weights": str(path), "output_dir": str(tmp_path / path.suffix)})
        assert run_cli("distill", str(cfg), "-q") == 0
        out = json.loads((tmp_path / path.suffix / "manifest.json").read_text())["stages"]["distill"]["outputs"]
        assert out["training"]["teacher"]["source"] == str(path)  # loaded, not trained
        assert next(r for r in out["variants"] if r["variant"] == "teacher")["metric"] == expected


def test_readme_app_example_runs_as_written(tiny_run, tmp_path):
    readme = (Path(__file__).parent.parent / "docs" / "bundles.md").read_text()
    code = re.search(r"## Using the bundle in an app.*?```python\n(.*?)```", readme, re.S).group(1)
    code = code.replace('"artifacts/mnist/export/bundle"', repr(str(tiny_run / "export" / "bundle")))
    code += "\nimport sklearn.datasets as d\nprint(predict(d.load_digits().images[:5].reshape(5, 1, 8, 8)))\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(eval(r.stdout)) == 5

"""Bad input found by held-out runs: each gets one clear line, exit 2, no traceback, nothing written.

Config, data, model and checkpoint mistakes through `kdpipe all`; malformed inputs and bundles
through `kdpipe predict`; and what the run folder looks like to another user (file permissions)."""

import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli, write_config


def _kdpipe(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "kdpipe", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})


def _one_clear_line(r, *texts):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for t in texts:
        assert t in r.stderr, r.stderr


def _make_bad_data(folder: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    x[7, 2] = np.nan
    np.savez(folder / "nan.npz", x=x, y=(x[:, 0] > 0).astype(int))
    rows = ["a,b,c,answer"] + [f"{r[0]:.3f},{r[1]:.3f},{'inf' if i == 4 else r[2]},{int(r[0] > 0)}"
                               for i, r in enumerate(rng.normal(size=(50, 3)))]
    (folder / "inf.csv").write_text("\n".join(rows))
    (folder / "header.csv").write_text("a,b,label\n")
    (folder / "text.npz").write_text("not a zip archive\n")
    torch.save({"w": collections.OrderedDict(a=1), "obj": Path("/x")}, folder / "pickle.pt")
    (folder / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    torch.save({"lin.weight": torch.zeros(3, 3)}, folder / "wrong.pt")
    (folder / "broken_factory.py").write_text("def make(input_shape, num_classes):\n"
                                              "    raise RuntimeError('my factory is broken')\n")
    (folder / "afile").write_text("")
    (folder / "dup.yaml").write_text("name: a\nseed: 1\ndistill:\n  epochs: 2\n  lr: 0.1\n  epochs: 3\n")


BAD_RUNS = [
    ("nan in npz", {"data.source": "npz:{d}/nan.npz"}, ["NaN or infinite", "sample 7", "index 2"]),
    ("inf in csv", {"data.source": "csv:{d}/inf.csv", "data.label_column": "answer"},
     ["NaN or infinite", "sample 4", "column 'c'"]),
    ("header-only csv", {"data.source": "csv:{d}/header.csv"}, ["no data rows"]),
    ("not an npz", {"data.source": "npz:{d}/text.npz"}, ["not an .npz file"]),
    ("factory raises", {"student.model": "python:broken_factory:make", "student.params": {}},
     ["student.model 'python:broken_factory:make'", "RuntimeError: my factory is broken", "--debug"]),
    ("output_dir in /proc", {"output_dir": "/proc/kdpipe-test-run"}, ["cannot write in /proc"]),
    ("output_dir under a file", {"output_dir": "{d}/afile/run"}, ["afile is a file"]),
    ("bundle name never made", {"export.bundle": "no-such-variant"},
     ["export.bundle 'no-such-variant'", "student-int8-dynamic"]),
    ("pickled teacher", {"teacher.weights": "{d}/pickle.pt"}, ["pickled Python objects", "state_dict()"]),
    ("garbage safetensors", {"teacher.weights": "{d}/garbage.safetensors"}, ["cannot read checkpoint"]),
    ("state dict that does not fit", {"teacher.weights": "{d}/wrong.pt"}, ["does not match the model"]),
]


@pytest.mark.parametrize("label, overrides, texts", BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_run_input_is_one_line_and_touches_nothing(tmp_path, label, overrides, texts):
    _make_bad_data(tmp_path)
    overrides = {k: v.format(d=tmp_path) if isinstance(v, str) else v for k, v in overrides.items()}
    cfg = write_config(tmp_path, overrides)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _kdpipe("all", str(cfg), cwd=tmp_path)
    _one_clear_line(r, *texts)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no probe left behind
    assert "running" not in r.stdout + r.stderr
    assert not any(w.endswith(("defaul", "defaul)")) for w in r.stderr.split())  # never cut mid-word


def test_debug_shows_the_factory_traceback(tmp_path):
    _make_bad_data(tmp_path)
    cfg = write_config(tmp_path, {"student.model": "python:broken_factory:make", "student.params": {}})
    for args, env in ((["--debug", "all", str(cfg)], None), (["all", str(cfg)], {"KDPIPE_DEBUG": "1"})):
        r = _kdpipe(*args, cwd=tmp_path, env=env)
        assert r.returncode == 2 and "Traceback" in r.stderr and "raise RuntimeError('my factory is broken')" in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("kdpipe: error: student.model")


def test_duplicated_key_names_the_key_and_both_lines(tmp_path):
    _make_bad_data(tmp_path)
    _one_clear_line(_kdpipe("show-config", str(tmp_path / "dup.yaml")), "key 'epochs' is given twice",
                    "lines 4 and 6")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from kdpipe.pipeline.config import load_config

    (tmp_path / "c.yaml").write_text("teacher:\n  train: &t {epochs: 2, lr: 0.1}\n"
                                     "prune:\n  finetune:\n    <<: *t\n    epochs: 1\n")
    cfg = load_config(tmp_path / "c.yaml")  # the key after the merge wins, as YAML means: no duplicate
    assert cfg.prune.finetune.epochs == 1 and cfg.prune.finetune.lr == 0.1


def test_factory_modules_import_from_the_current_and_the_config_folder(tmp_path, monkeypatch):
    """Both folders work without PYTHONPATH (the console script has neither on sys.path)."""
    for where, module in (("cwd", "kd_student_cwd"), ("config", "kd_student_cfg")):
        folder = tmp_path / where
        folder.mkdir()
        (folder / f"{module}.py").write_text(
            "import math, torch\n"
            "def make(input_shape, num_classes):\n"
            "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), num_classes))\n")
        cfg = write_config(folder, {"student.model": f"python:{module}:make", "student.params": {},
                                    "teacher.train.epochs": 1, "distill.epochs": 1})
        monkeypatch.chdir(folder if where == "cwd" else tmp_path)
        assert run_cli("distill", str(cfg), "-q") == 0
        assert module not in [Path(p).name for p in sys.path]


def test_upstream_hint_repeats_the_overrides(tmp_path):
    cfg = write_config(tmp_path)
    r = _kdpipe("prune", str(cfg), "--set", f"output_dir={tmp_path / 'other run'}", "--set", "distill.epochs=1")
    _one_clear_line(r, f"run `kdpipe distill {cfg} --set 'output_dir={tmp_path / 'other run'}' --set distill.epochs=1`")


def test_calibration_on_a_sample_count_that_is_not_a_multiple_of_the_batch(tmp_path):
    """Percentile and entropy calibrators stack every batch: a ragged last batch broke them."""
    from kdpipe.stages.quantize import calibration_batches

    x = np.zeros((418, 3), np.float32)
    for samples, expect in ((100, [32, 32, 32]), (20, [20]), (5000, [32] * 13)):
        assert [len(b) for b in calibration_batches(x, samples, seed=0)] == expect
    cfg = write_config(tmp_path, {"quantize.variants": ["static"], "quantize.calibration": ["percentile", "entropy"],
                                  "quantize.calibration_samples": 100, "prune.enabled": False,
                                  "benchmark.providers": ["cpu"]})
    assert run_cli("quantize", str(cfg), "-q") == 2  # needs distill first
    assert run_cli("distill", str(cfg), "-q") == 0 and run_cli("prune", str(cfg), "-q") == 0
    assert run_cli("quantize", str(cfg), "-q") == 0
    out = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["quantize"]["outputs"]
    assert [r["quantization"].get("calibration_samples") for r in out["variants"]] == [96, 96, None]  # + teacher


# --- predict and bundles -------------------------------------------------------------------------


@pytest.fixture
def bundle(tiny_run, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_run / "export" / "bundle", folder)
    return folder


def test_predict_refuses_unusable_inputs_with_the_real_problem(bundle, tmp_path):
    np.savez(tmp_path / "strings.npz", x=np.array([["a", "b"], ["c", "d"]]))
    np.savez(tmp_path / "no_x.npz", a=np.zeros((2, 64)), b=np.zeros(2))
    np.savez(tmp_path / "unflat.npz", x=np.zeros((3, 8, 8)))
    (tmp_path / "header.csv").write_text(",".join(f"p{i}" for i in range(64)) + "\n")
    (tmp_path / "fake.npz").write_text("hello\n")
    x = np.zeros((2, 64))
    x[1, 5] = np.inf
    np.savez(tmp_path / "inf.npz", x=x)
    for name, text in (("strings.npz", "must be numbers (got dtype <U1)"), ("no_x.npz", "no array named 'x'"),
                       ("unflat.npz", "shape (8, 8) per sample; the model expects (1, 8, 8)"),
                       ("header.csv", "no data rows"), ("fake.npz", "not an .npz file"),
                       ("inf.npz", "sample 1 (counting from 0), index (0, 0, 5)")):
        _one_clear_line(_kdpipe("predict", str(bundle), str(tmp_path / name)), name, text)
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 64)))  # flat rows are the documented other form
    r = _kdpipe("predict", str(bundle), str(tmp_path / "flat.npz"))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3


def test_read_inputs_refuses_image_arrays_for_a_feature_bundle(tmp_path):
    from kdpipe.bundle import read_inputs
    from kdpipe.errors import DataError

    np.savez(tmp_path / "images.npz", x=np.zeros((4, 1, 8, 8)))
    with pytest.raises(DataError, match=r"shape \(1, 8, 8\) per sample; the model expects \(64,\)"):
        read_inputs(tmp_path / "images.npz", {"input": {"shape": ["batch", 64]}, "preprocessing": {}})


@pytest.mark.parametrize("key", ["model", "tokenizer"])
def test_a_bundle_naming_files_outside_its_folder_is_refused(bundle, tmp_path, key):
    info = json.loads((bundle / "kdpipe.json").read_text())
    info[key] = "../../../../etc/passwd"
    (bundle / "kdpipe.json").write_text(json.dumps(info))
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 64)))
    _one_clear_line(_kdpipe("predict", str(bundle), str(tmp_path / "x.npz")), "points outside the bundle folder")


def test_an_image_folder_says_how_many_files_it_skipped(tmp_path, capsys):
    from PIL import Image

    from kdpipe.data.sources import load_source
    from kdpipe.pipeline.config import DataConfig

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "labels.csv").write_text("x")
    data = load_source(DataConfig(source=f"folder:{tmp_path}"))
    assert len(data.x) == 12
    assert "skipped 2 file(s) that are not images" in capsys.readouterr().err


# --- what the run folder looks like to others ----------------------------------------------------


def test_run_folder_files_get_the_permissions_of_plain_writes(tiny_run):
    from kdpipe.pipeline.artifacts import plain_mode

    modes = {str(p.relative_to(tiny_run)): p.stat().st_mode & 0o777 for p in tiny_run.rglob("*")
             if p.is_file() and not p.name.startswith(".")}
    for rel in ("manifest.json", "report/report.json", "report/report.md", "report/report.html",
                "export/bundle/kdpipe.json", "benchmark/latency.json", "distill/student.safetensors",
                "prune/pruned.safetensors"):
        assert rel in modes
    assert {rel: m for rel, m in modes.items() if m != plain_mode(0o666)} == {}


def test_report_has_the_split_sizes_per_class(tiny_run):
    report = json.loads((tiny_run / "report" / "report.json").read_text())
    samples, per_class = report["splits"]["samples"], report["splits"]["per_class"]
    assert samples["train"] + samples["val"] + samples["test"] == 600
    assert {s: sum(per_class[s].values()) for s in samples} == samples and set(per_class["test"]) == set("0123456789")
    md = (tiny_run / "report" / "report.md").read_text()
    assert "## Data splits" in md and f"| samples | {samples['train']:,} |" in md

"""Bad input found by held-out runs: each gets one clear line, exit 2, no traceback, nothing written.

Config, data, model and checkpoint mistakes through `kdpipe all`; malformed inputs and bundles
through `kdpipe predict`; and what the run folder looks like to another user (file permissions)."""

import collections
import json
import os
import re
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
    (folder / "bad_factories.py").write_text(
        "import sys, torch\n"
        "class Nan(torch.nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__(); self.lin = torch.nn.LazyLinear(num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.lin(x.flatten(1)) * float('nan')\n"
        "class Ints(Nan):\n"
        "    def forward(self, x):\n"
        "        return self.lin(x.flatten(1)).long()\n"
        "class Still(torch.nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__(); self.n = num_classes\n"
        "    def forward(self, x):\n"
        "        return x.flatten(1)[:, :self.n] * 1.0\n"
        "def nan_out(num_classes): return Nan(num_classes)\n"
        "def int_out(num_classes): return Ints(num_classes)\n"
        "def no_params(num_classes): return Still(num_classes)\n"
        "def exits(num_classes): sys.exit(3)\n"
        "def interrupts(num_classes): raise KeyboardInterrupt\n")
    nan_weights = {k: v.clone() for k, v in _tiny_teacher_state().items()}
    next(iter(nan_weights.values()))[0] = float("nan")
    torch.save(nan_weights, folder / "nan_teacher.pt")
    rows = ["a,b,label"] + [f"{3e38 if i % 2 else 1.0},{i},{i % 2}" for i in range(40)]
    (folder / "huge.csv").write_text("\n".join(rows))
    rows = ["a,b,label"] + [f"{i},{i * 2},{1_000_000 if i % 2 else 0}" for i in range(40)]
    (folder / "million.csv").write_text("\n".join(rows))
    (folder / "weights.csv").write_text("a,b\n1,2\n")


def _tiny_teacher_state() -> dict:
    """The weights of the tiny config's teacher (random: only their names and shapes matter here)."""
    from kdpipe.models.factory import build_model

    t = json.loads(json.dumps(__import__("tests.conftest", fromlist=["TINY"]).TINY))["teacher"]
    return build_model(t["model"], t["params"], (1, 8, 8), 10, "teacher.model").state_dict()


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
     ["export.bundle 'no-such-variant'", "pruned-int8-dynamic"]),
    ("pickled teacher", {"teacher.weights": "{d}/pickle.pt"}, ["pickled Python objects", "state_dict()"]),
    ("garbage safetensors", {"teacher.weights": "{d}/garbage.safetensors"}, ["cannot read checkpoint"]),
    ("state dict that does not fit", {"teacher.weights": "{d}/wrong.pt"}, ["does not match the model"]),
    # values no run can use
    ("seed far too large", {"seed": 1e23}, ["seed: a whole number far too large"]),
    ("negative seed", {"seed": -1}, ["seed:", "greater than or equal to 0"]),
    ("1e23 epochs", {"distill.epochs": 1e23}, ["distill.epochs: a whole number far too large"]),
    ("a billion epochs", {"distill.epochs": 1_000_000_000}, ["distill.epochs: at most 100,000"]),
    ("infinite temperature", {"distill.temperature": float("inf")}, ["distill.temperature", "finite number"]),
    ("NaN max_drop", {"export.max_drop": float("nan")}, ["export.max_drop", "finite number"]),
    ("zero image size", {"data.image_size": [0, 0]}, ["data.image_size", "greater than or equal to 1"]),
    ("negative image size", {"data.image_size": [-1, 8]}, ["data.image_size", "greater than or equal to 1"]),
    ("zero-width layer", {"teacher.params.hidden": 0}, ["teacher.model 'builtin:cnn'", "no values at all",
                                                        "width of at least 1"]),
    ("a million classes", {"data.source": "csv:{d}/million.csv"}, ["class ids run up to 1,000,000",
                                                                    "only 2 distinct values"]),
    ("values that overflow float32", {"data.source": "csv:{d}/huge.csv"}, ["overflow float32", "rescale"]),
    # models that cannot train
    ("NaN outputs", {"student.model": "python:bad_factories:nan_out", "student.params": {}},
     ["student.model 'python:bad_factories:nan_out'", "NaN or infinite values on real training inputs"]),
    ("integer outputs", {"student.model": "python:bad_factories:int_out", "student.params": {}},
     ["returns torch.int64 values"]),
    ("no parameters", {"student.model": "python:bad_factories:no_params", "student.params": {}},
     ["no trainable parameters"]),
    ("factory calls sys.exit", {"student.model": "python:bad_factories:exits", "student.params": {}},
     ["the factory called sys.exit(3)"]),
    ("factory raises KeyboardInterrupt", {"student.model": "python:bad_factories:interrupts", "student.params": {}},
     ["the factory raised KeyboardInterrupt (no Ctrl-C was pressed)"]),
    ("NaN teacher weights", {"teacher.weights": "{d}/nan_teacher.pt"}, ["holds NaN or infinite values",
                                                                        "nan_teacher.pt"]),
    ("CSV as teacher weights", {"teacher.weights": "{d}/weights.csv"}, ["is not a checkpoint", "torch.save"]),
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


@pytest.mark.parametrize("label, overrides, texts", [b for b in BAD_RUNS if "output_dir" not in b[1]],
                         ids=[b[0] for b in BAD_RUNS if "output_dir" not in b[1]])
def test_bad_input_rerun_into_a_finished_run_changes_nothing(tiny_run, tmp_path, capsys, label, overrides, texts):
    """The same mistakes made on a rerun of a finished run folder: refused as before, and the folder,
    its manifest and its own modification time are as they were (in process: no torch import each)."""
    from tests.pipeline.test_rerun_transaction import snapshot

    _make_bad_data(tmp_path)
    shutil.copytree(tiny_run, tmp_path / "run")
    before = snapshot(tmp_path / "run", mtime=True)
    overrides = {k: v.format(d=tmp_path) if isinstance(v, str) else v for k, v in overrides.items()}
    capsys.readouterr()
    assert run_cli("all", str(write_config(tmp_path, overrides))) == 2
    err = capsys.readouterr().err
    assert err.count("kdpipe: error:") == 1 and "running" not in err and "Traceback" not in err, err
    assert all(t in err for t in texts), err
    assert snapshot(tmp_path / "run", mtime=True) == before


def test_debug_shows_the_factory_traceback(tmp_path):
    _make_bad_data(tmp_path)
    cfg = write_config(tmp_path, {"student.model": "python:broken_factory:make", "student.params": {}})
    for args, env in ((["--debug", "all", str(cfg)], None), (["all", str(cfg)], {"KDPIPE_DEBUG": "1"})):
        r = _kdpipe(*args, cwd=tmp_path, env=env)
        assert (
            r.returncode == 2 and "Traceback" in r.stderr and "raise RuntimeError('my factory is broken')" in r.stderr
        )
        assert r.stderr.strip().splitlines()[-1].startswith("kdpipe: error: student.model")


def test_duplicated_key_names_the_key_and_both_lines(tmp_path):
    _make_bad_data(tmp_path)
    _one_clear_line(_kdpipe("show-config", str(tmp_path / "dup.yaml")), "key 'epochs' is given twice",
                    "lines 4 and 6")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from kdpipe.config.load import load_config

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
            "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), num_classes))\n"
        )
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
    from kdpipe.quantization.quantizers import calibration_batches

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
    made = [r for r in out["variants"] if r["source"] != "baseline"]  # (its copy where KD did not pay)
    assert [r["quantization"].get("calibration_samples") for r in made] == [96, 96, None]  # + teacher


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
    from kdpipe.bundle.folder import read_inputs
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

    from kdpipe.config.schema import DataConfig
    from kdpipe.data.registry import load_arrays as load_source

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
    from kdpipe.io import plain_mode

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


BROKEN_BUNDLES = [
    ("no input", lambda i: i.pop("input"), '"input" is missing'),
    ("no preprocessing", lambda i: i.pop("preprocessing"), '"preprocessing" is missing'),
    ("labels null", lambda i: i.update(labels=None), '"labels" is None'),
    ("3 labels for 10 outputs", lambda i: i.update(labels=["a", "b", "c"]), "3 labels for a model with 10 outputs"),
    (
        "a shape the model lacks",
        lambda i: i["input"].update(shape=["batch", 3, 8, 8]),
        "input shape ['batch', 3, 8, 8]",
    ),
    (
        "an input name the model lacks",
        lambda i: i["input"].update(name="pixels"),
        "input name 'pixels' is not the model's",
    ),
    ("std 0", lambda i: i["preprocessing"].update(std=0), "preprocessing.std is 0"),
    (
        "a text bundle without its tokenizer",
        lambda i: i.update(task="causal-lm", tokenizer="tokenizer.json", max_sequence_length=32),
        "the tokenizer file 'tokenizer.json' is not in",
    ),
]


@pytest.mark.parametrize("label, damage, text", BROKEN_BUNDLES, ids=[b[0] for b in BROKEN_BUNDLES])
def test_a_bundle_its_description_contradicts_is_refused_before_any_prediction(bundle, tmp_path, label, damage, text):
    from kdpipe.bundle.folder import load_bundle
    from kdpipe.errors import KdpipeError

    info = json.loads((bundle / "kdpipe.json").read_text())
    damage(info)
    (bundle / "kdpipe.json").write_text(json.dumps(info))
    with pytest.raises(KdpipeError, match=re.escape(text)):
        load_bundle(bundle)
    np.savez(tmp_path / "x.npz", x=np.zeros((6, 64)))
    r = _kdpipe("predict", str(bundle), str(tmp_path / "x.npz"))
    _one_clear_line(r, text)
    assert r.stdout == ""  # not six predictions and then a traceback


def test_a_headerless_csv_keeps_its_first_row(bundle, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(300, 64))
    np.savetxt(tmp_path / "rows.csv", x, fmt="%d", delimiter=",")  # no header line
    np.savez(tmp_path / "rows.npz", x=x.astype(np.float32))
    from_csv = _kdpipe("predict", "--json", str(bundle), str(tmp_path / "rows.csv"))
    from_npz = _kdpipe("predict", "--json", str(bundle), str(tmp_path / "rows.npz"))
    assert from_csv.returncode == 0 and from_npz.returncode == 0
    rows = [json.loads(line) for line in from_csv.stdout.splitlines()]
    assert len(rows) == 300 and [r["index"] for r in rows] == list(range(300))
    assert [r["label"] for r in rows] == [json.loads(line)["label"] for line in from_npz.stdout.splitlines()]


def test_predict_names_a_folder_or_a_file_kind_it_does_not_read(bundle, tmp_path):
    (tmp_path / "notes.txt").write_text("1,2,3\n")
    _one_clear_line(_kdpipe("predict", str(bundle), str(tmp_path)), "a folder; give the input files")
    _one_clear_line(_kdpipe("predict", str(bundle), str(tmp_path / "notes.txt")),
                    ".txt is not an input this bundle reads: .npz, .csv")


def test_images_of_another_size_or_mode_are_noted_once_or_refused_with_strict(tmp_path):
    from PIL import Image

    from tests.conftest import write_config

    cfg = write_config(tmp_path, {"student.model": "builtin:cnn", "student.params": {"channels": [4], "hidden": 8},
                                  "prune.enabled": False, "quantize.enabled": False, "benchmark.providers": ["cpu"]})
    assert run_cli("distill", str(cfg), "-q") == 0 and run_cli("prune", str(cfg), "-q") == 0
    assert run_cli("quantize", str(cfg), "-q") == 0 and run_cli("export", str(cfg), "-q") == 0
    bundle = tmp_path / "run" / "export" / "bundle"
    images = {"big.png": np.full((16, 16), 200, np.uint8), "big2.png": np.full((16, 16), 100, np.uint8),
              "dot.png": np.full((1, 1), 50, np.uint8), "rgb.png": np.full((8, 8, 3), 90, np.uint8),
              "fits.png": np.full((8, 8), 30, np.uint8)}
    for name, arr in images.items():
        Image.fromarray(arr).save(tmp_path / name)
    r = _kdpipe("predict", str(bundle), *(str(tmp_path / n) for n in images))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 5
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 3, r.stderr  # 16x16 once (not twice), 1x1, RGB; nothing for the image that fits
    assert "resized from 16x16 to 8x8" in notes[0] and "resized from 1x1 to 8x8" in notes[1]
    assert "converted from RGB to greyscale" in notes[2]
    _one_clear_line(_kdpipe("predict", "--strict", str(bundle), str(tmp_path / "big.png")),
                    "the model takes 8x8 greyscale images; this one would be resized from 16x16 to 8x8 (--strict)")
    r = _kdpipe("predict", "--strict", str(bundle), str(tmp_path / "fits.png"))
    assert r.returncode == 0 and r.stderr == ""


def test_a_batch_larger_than_the_training_split_is_one_batch_of_it_with_a_note(tmp_path, capsys):
    cfg = write_config(tmp_path, {"data.batch_size": 1_000_000_000, "teacher.train.epochs": 1, "distill.epochs": 1})
    capsys.readouterr()
    assert run_cli("distill", str(cfg)) == 0
    err = capsys.readouterr().err
    assert "data.batch_size 1,000,000,000 is more than the 418 training samples: every step takes the whole " \
           "training split" in err
    history = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["distill"]["outputs"]["training"]
    assert all(len(h["history"]) == 1 for h in history.values())  # one epoch each, of one step

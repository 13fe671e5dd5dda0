"""`kdpipe init` for each kind of data and teacher: the task and student it infers, and a config that
`kdpipe check` passes. init then `kdpipe all` on the written config, unedited (tiny settings with
--set), runs in tests/test_examples.py, as the README's own-data commands."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import run_cli
from tests.test_examples import TINY, TINY_LM, tiny_encoder_folder


def _init(tmp_path, *args):
    out = tmp_path / "made.yaml"
    r = subprocess.run([sys.executable, "-m", "kdpipe", "init", *args, "-o", str(out)], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, cwd=tmp_path)
    return r, out


def _labelled_texts(path):
    from kdpipe.data.registry import load_labelled_texts

    texts, labels = load_labelled_texts("builtin:pydoc-sections", "text", "label")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sentence", "section"])  # a label column by its values, not its name
        w.writerows(list(zip(texts, labels))[:300])


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder_folder(tmp_path_factory.mktemp("encoder") / "teacher")


def _all(config, tmp_path, extra=()):
    sets = [a for kv in [*TINY, *extra, f"output_dir={tmp_path / 'run'}"] for a in ("--set", kv)]
    assert run_cli("all", str(config), "-q", *sets) == 0
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert (tmp_path / "run" / "export" / "bundle" / "model.onnx").is_file()
    return report


def test_a_labelled_text_csv_and_a_transformers_folder_give_text_classification(tmp_path, encoder):
    _labelled_texts(tmp_path / "docs.csv")
    r, made = _init(tmp_path, "--teacher", f"hf:{encoder}", "--data", f"csv:{tmp_path / 'docs.csv'}", "--no-estimate")
    assert r.returncode == 0, r.stderr
    raw = yaml.safe_load(made.read_text())
    assert raw["task"] == "classification" and raw["teacher"]["finetune"] is True
    assert raw["data"]["label_column"] == "section" and raw["data"]["text_column"] == "sentence"
    assert raw["student"] == {"model": "derive:teacher", "params": {"layers": [0]}}  # every other of 2 layers
    assert 16 <= raw["data"]["sequence_length"] <= 64 and raw["data"]["sequence_length"] % 16 == 0
    text = made.read_text()
    assert "# teacher.finetune: true: its head does not know these labels" in text
    assert f"Next: kdpipe check {made}" in r.stdout


def test_a_numeric_table_gives_tabular_classification_with_an_estimate(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    with open(tmp_path / "table.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(64)] + ["target"])
        w.writerows([list(map(float, row)) + [int(y)] for row, y in zip(d.data[:400], d.target[:400])])
    r, made = _init(tmp_path, "--teacher", "builtin:mlp", "--data", f"csv:{tmp_path / 'table.csv'}")
    assert r.returncode == 0, r.stderr
    raw = yaml.safe_load(made.read_text())
    assert raw["task"] == "classification" and raw["data"]["label_column"] == "target"
    assert raw["student"] == {"model": "builtin:mlp", "params": {"hidden": [64]}}
    assert (
        "Estimated wall time of `kdpipe all` on this machine: about " in r.stdout
        and "timing (bundle choice" in r.stdout
    )
    _all(made, tmp_path, ["teacher.params={hidden: [128]}"])  # arrays: seconds; the README test runs a text one


@pytest.mark.parametrize("kind", ["images", "arrays", "texts-encoder", "texts-decoder", "plain-text-masked"])
def test_each_kind_of_data_gets_its_task_and_a_config_check_passes(kind, tmp_path, encoder, monkeypatch, capsys):
    if kind == "images":
        for c in ("cat", "dog"):
            (tmp_path / "pics" / c).mkdir(parents=True)
            for i in range(12):
                Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16), np.uint8)).save(
                    tmp_path / "pics" / c / f"{i}.png")
        args, task, extra = ["--teacher", "builtin:cnn", "--data", f"folder:{tmp_path / 'pics'}"], "classification", []
    elif kind == "arrays":
        from sklearn.datasets import load_digits

        d = load_digits()
        np.savez(tmp_path / "d.npz", x=d.images[:300, None].astype(np.float32), y=d.target[:300])
        args, task, extra = ["--teacher", "builtin:cnn", "--data", f"npz:{tmp_path / 'd.npz'}"], "classification", []
    elif kind == "plain-text-masked":
        from kdpipe.data.registry import load_texts

        (tmp_path / "t.txt").write_text("\n".join(load_texts("builtin:pydoc-paragraphs")[:60]))
        args = ["--teacher", "hf-config:bert", "--data", f"text:{tmp_path / 't.txt'}", "--task", "masked-lm"]
        task = "masked-lm"
        extra = TINY_LM[1:] + ["teacher.params={num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 2, "
                               "intermediate_size: 64}", "student.params={num_hidden_layers: 1, hidden_size: 32, "
                               "num_attention_heads: 2, intermediate_size: 64}"]
    else:
        (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": f"sentence number {i} about python lists"}) + "\n"
                                                  for i in range(120)))
        teacher = f"hf:{encoder}" if kind == "texts-encoder" else "hf-config:gpt2"
        args = ["--teacher", teacher, "--data", f"jsonl:{tmp_path / 't.jsonl'}"]
        task = "embedding" if kind == "texts-encoder" else "causal-lm"
        extra = TINY_LM[1:] + ["teacher.params={n_layer: 2, n_embd: 32, n_head: 2}",
                               "student.params={n_layer: 1, n_embd: 32, n_head: 2}"] if task == "causal-lm" else []
    r, made = _init(tmp_path, *args, "--no-estimate")
    assert r.returncode == 0, r.stderr
    raw = yaml.safe_load(made.read_text())
    assert raw["task"] == task
    if kind == "images":
        assert raw["data"]["image_size"] == [16, 16] and raw["data"]["channels"] == 1
        assert raw["student"]["model"] == "builtin:cnn"
    sets = [a for kv in extra for a in ("--set", kv)]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert run_cli("check", str(made), *sets) == 0
    assert f"config: task {task}" in capsys.readouterr().out and not (tmp_path / "artifacts").exists()


def test_init_without_a_terminal_names_what_it_needs_and_keeps_existing_files(tmp_path):
    r, _ = _init(tmp_path, "--data", "builtin:digits")
    assert r.returncode == 2 and "--teacher is needed" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "made.yaml").write_text("mine\n")
    r, made = _init(tmp_path, "--teacher", "builtin:cnn", "--data", "builtin:digits", "--no-estimate")
    assert r.returncode == 2 and "exists" in r.stderr and made.read_text() == "mine\n"
    r, _ = _init(tmp_path, "--teacher", "python:mine:make", "--data", "builtin:digits", "--force", "--no-estimate")
    assert r.returncode == 2 and "name one with --student" in r.stderr


MY_MODELS = '''
from torch import nn


def teacher(num_classes, hidden=64):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def student(num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))
'''


@pytest.mark.parametrize("student", ["python:mymodels:student", "builtin:mlp"])
def test_ones_own_teacher_and_student_modules_and_a_trained_teacher_give_a_config_check_passes(
        student, tmp_path, monkeypatch, capsys):
    """python: teacher and student with their own arguments (no builtin: params forced on them), and
    a trained teacher's checkpoint named with --teacher-weights: the written config passes check as written."""
    import torch
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits

    (tmp_path / "mymodels.py").write_text(MY_MODELS)
    d = load_digits()
    np.savez(tmp_path / "d.npz", x=d.images[:300, None].astype(np.float32), y=d.target[:300])
    monkeypatch.syspath_prepend(str(tmp_path))
    from mymodels import teacher  # the module written above

    torch.manual_seed(0)
    save_file(teacher(10).state_dict(), str(tmp_path / "teacher.safetensors"))
    args = ["--teacher", "python:mymodels:teacher", "--data", f"npz:{tmp_path / 'd.npz'}",
            "--teacher-weights", "teacher.safetensors", "--student", student]
    r, made = _init(tmp_path, *args, "--no-estimate")
    assert r.returncode == 0, r.stderr
    raw = yaml.safe_load(made.read_text())
    assert raw["teacher"]["weights"] == str(tmp_path / "teacher.safetensors") and raw["student"]["model"] == student
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert run_cli("check", str(made)) == 0, capsys.readouterr().err
    # and runs: the trained teacher is loaded, not trained (short settings for the test)
    short = ["distill.epochs=1", "prune.finetune.epochs=1", "benchmark.providers=[cpu]", "benchmark.batch_sizes=[1]",
             "benchmark.min_seconds=0.01", "quantize.variants=[dynamic]", f"output_dir={tmp_path / 'run'}"]
    assert run_cli("all", str(made), "-q", *[a for kv in short for a in ("--set", kv)]) == 0
    assert (tmp_path / "run" / "export" / "bundle" / "model.onnx").is_file()
    r, _ = _init(tmp_path, *args[:4], "--teacher-weights", "missing.pt", "--no-estimate", "--force")
    assert r.returncode == 2 and "--teacher-weights: missing.pt: no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_messy_labelled_csv_is_told_and_handled_never_a_traceback(tmp_path, encoder, monkeypatch, capsys):
    """Missing values in every column kind (texts, labels, a numeric column), a duplicated row, a class
    with one example: init names each with what kdpipe does about it and writes a config that passes
    check; rows without a label are refused with their count and first rows unless left out."""
    from kdpipe.data.registry import load_labelled_texts

    texts, labels = load_labelled_texts("builtin:pydoc-sections", "text", "label")
    rows = [[t, y, i] for i, (t, y) in enumerate(zip(texts[:200], labels[:200]))]
    rows[3][1] = rows[10][1] = ""  # no label
    rows[5][0] = ""  # no text
    rows[7][2] = ""  # no number
    rows.append(list(rows[20]))  # the same row twice
    rows.append(["A text of a class seen once.", "lonely", 999])
    with open(tmp_path / "messy.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text", "label", "score"], *rows])
    r, made = _init(tmp_path, "--teacher", f"hf:{encoder}", "--data", f"csv:{tmp_path / 'messy.csv'}", "--no-estimate")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    raw = yaml.safe_load(made.read_text())
    assert raw["data"]["drop_unlabelled"] is True
    assert "2 rows without a 'label' (rows 5, 12): left out" in r.stdout
    assert "1 row without a 'text': skipped" in r.stdout
    assert "texts repeat an earlier one" in r.stdout and "fall in more than one split" in r.stdout
    assert "'lonely': 1) cannot reach the train, validation and test splits" in r.stdout
    monkeypatch.chdir(tmp_path)
    sets = [a for kv in TINY_LM[1:] for a in ("--set", kv)]
    capsys.readouterr()
    assert run_cli("check", str(made), *sets) == 0
    said = capsys.readouterr()
    assert "2 of 202 rows have no 'label' (rows 5, 12): left out (data.drop_unlabelled)" in said.err + said.out
    assert "texts repeat an earlier one" in said.err + said.out and "'lonely': 1" in said.err + said.out
    assert run_cli("check", str(made), *sets, "--set", "data.drop_unlabelled=false") == 2
    err = capsys.readouterr().err
    assert "2 of 202 rows have no 'label' (rows 5, 12); fill them in, or set data.drop_unlabelled: true" in err
    assert "Traceback" not in err

"""Text classification and sentence embeddings with transformers through every stage, on tiny models
built from configs or saved to a folder here (no downloads)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli, write_config

BERT = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def text_config(folder, task, **extra):
    source = "builtin:pydoc-sections" if task == "classification" else "builtin:pydoc-paragraphs"
    return write_config(folder, {
        "task": task, "data.source": source, "data.sequence_length": 24, "data.vocab_size": 300, "data.limit": 160,
        "data.batch_size": 16, "teacher.model": "hf-config:bert", "teacher.params": BERT,
        "teacher.train": {"epochs": 1, "lr": 0.003}, "student.model": "derive:teacher",
        "student.params": {"layers": [1], "hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32},
        "distill.epochs": 1, "distill.lr": 0.003, "distill.temperature": 2.0, "distill.alpha": 0.5,
        "distill.intermediate": {"hidden": "auto", "attention": "auto"}, "prune.enabled": False,
        "quantize.variants": ["dynamic", "static"], "quantize.calibration": ["minmax"],
        "quantize.calibration_samples": 8, "benchmark.batch_sizes": [1, 2], "benchmark.sequence_lengths": [8, 24],
        "export.max_drop": 1000.0, **extra})


OTHER = [("A list is a mutable sequence that holds any objects in order.", "built-in-types"),
         ("The while statement repeats its body as long as an expression is true.", "statements"),
         ("A lambda expression creates an anonymous function from one expression.", "expressions"),
         ("Every object has an identity, a type and a value in the data model.", "data-model")]


@pytest.fixture(scope="module", params=["classification", "embedding"])
def text_run(request, tmp_path_factory):
    """Also with more unlabelled text for KD (data.extra_texts) and a second test set from another
    source (data.other_source): sentences written here, labelled for classification."""
    folder = tmp_path_factory.mktemp(request.param)
    other = folder / "other.jsonl"
    other.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in OTHER))
    cfg = text_config(folder, request.param, **{"data.extra_texts": "builtin:stdlib-sentences",
                                                 "data.other_source": f"jsonl:{other}",
                                                 "distill.freeze_embeddings": True, "distill.dropout": 0.0})
    assert run_cli("all", str(cfg), "-q") == 0
    return request.param, folder / "run"


def _manifest(run):
    return json.loads((run / "manifest.json").read_text())


def test_every_stage_runs_with_the_task_metrics(text_run):
    task, run = text_run
    report = json.loads((run / "report" / "report.json").read_text())
    rows = {(r["variant"], r["format"]): r for r in report["rows"]}
    assert {("teacher", "torch"), ("student", "torch"), ("student", "onnx-fp32"),
            ("student-int8-dynamic", "onnx-int8"), ("student-int8-static-minmax", "onnx-int8")} <= set(rows)
    student = rows[("student", "onnx-fp32")]
    if task == "classification":
        assert report["metric"]["name"] == "accuracy" and ("baseline", "torch") in rows
        # agreement is with the teacher's answers, not the labels: the teacher's ONNX copy agrees with itself
        assert rows[("teacher", "onnx-fp32")]["also"]["teacher_agreement"] >= 99.5
        assert 0 < student["also"]["teacher_agreement"] <= 100
    else:
        assert report["metric"]["name"] == "cosine similarity to teacher"
        assert ("baseline", "torch") not in rows and "no labels" in report["kd"]["verdict"]
        assert rows[("teacher", "torch")]["metric"]["value"] == pytest.approx(100.0, abs=1e-3)
        assert rows[("teacher", "torch")]["also"]["top10_neighbour_overlap"] == 100.0
        assert 0 <= student["also"]["top10_neighbour_overlap"] < 100
    kd = _manifest(run)["stages"]["distill"]["outputs"]["kd"]
    # auto mapping: embeddings onto embeddings, the one student block onto the teacher block it came from
    assert kd["intermediate"] == {"hidden": [[0, 0], [1, 2]], "attention": [[1, 2]]}
    md = (run / "report" / "report.md").read_text()
    assert "Latency by sequence length" in md and "seq 8 b1" in md and "seq 24 b2" in md
    # where the student started: which of the teacher's layers it kept, and how they were chosen
    start = report["kd"]["student_start"]
    assert start["init"] == "slice" and start["teacher_layers"] == [1]
    assert "(init: slice; the teacher's layers 1 (from 0, as student.params.layers lists them))" in md


def test_every_runtime_is_timed_on_the_same_texts_cut_as_an_app_feeds_them(text_run, tmp_path):
    """The PyTorch teacher cuts padding on its own; onnxruntime computes every column it is given. The
    benchmark feeds both the same tensors, cut after the longest text of each batch (here the test
    texts are cut to 10 of the 24 tokens, so padding would be timed if the inputs were not cut)."""
    import copy

    from kdpipe.config.load import load_config
    from kdpipe.data.splits import Split
    from kdpipe.run.context import StageContext
    from kdpipe.run.store import RunStore
    from kdpipe.stages import benchmark

    _, run = text_run
    cfg = load_config(run.parent / "config.yaml")
    assert json.loads((run / "benchmark" / "latency.json").read_text())["input_shapes"]["1"] == [1, 2, 24]
    from kdpipe.tasks import load_data

    data = copy.copy(load_data(cfg))
    x = data.test.x.copy()
    x[:, :, 10:] = 0  # padding: pad id 0, mask 0
    data.test = Split(x, data.test.y)
    ctx = StageContext(cfg, RunStore(run), tmp_path, "benchmark", quiet=True, _splits=data)
    out = benchmark.run(ctx)
    assert out["input_shapes"] == {"1": [1, 2, 10], "2": [2, 2, 10]}
    torch_row = next(r for r in out["results"] if r["runtime"] == "torch-eager" and r["available"])
    onnx_row = next(r for r in out["results"] if r["runtime"] == "onnxruntime" and r["available"])
    assert torch_row["batches"]["1"]["p50_ms"] > 0 and onnx_row["batches"]["1"]["p50_ms"] > 0
    assert set(onnx_row["sequence_lengths"]) == {"8", "24"}  # the by-length table still pads to 24
    assert onnx_row["sequence_lengths"]["24"]["1"] != onnx_row["batches"]["1"]  # other tensors, timed apart
    # in the run itself the test texts fill 24 tokens: the by-length entry at 24 is the batch timed once
    before = json.loads((run / "benchmark" / "latency.json").read_text())["results"]
    onnx_before = next(r for r in before if r["runtime"] == "onnxruntime" and r["available"])
    assert onnx_before["sequence_lengths"]["24"]["1"] == onnx_before["batches"]["1"]
    md = (run / "report" / "report.md").read_text()
    assert "same test texts, cut after the longest of each batch as an app feeds them (24 tokens at batch 1" in md


def test_extra_texts_train_the_student_only_and_the_other_source_is_scored(text_run):
    task, run = text_run
    distill = _manifest(run)["stages"]["distill"]["outputs"]
    sizes = distill["split_sizes"]
    # data.limit (160) splits 0.7/0.1/0.2-ish, then 160 sentences of the standard library's docstrings
    assert sizes["train"] > 160 and sizes["val"] + sizes["test"] < 80
    if task == "classification":
        assert distill["class_counts"]["train_unlabelled"] == 160  # the extra texts carry no labels
        # the extra texts are KD's alone: the baseline keeps its epochs over the labelled rows
        assert len(distill["training"]["baseline"]["history"]) == 1
    report = json.loads((run / "report" / "report.json").read_text())
    rows = {(r["variant"], r["format"]): r for r in report["rows"]}
    other = {key: rows[key]["also"]["other_source"] for key in (
        ("teacher", "torch"), ("teacher", "onnx-fp32"), ("student", "torch"), ("student", "onnx-fp32"),
        ("student-int8-dynamic", "onnx-int8"))}
    # the same model scores the same texts alike in PyTorch and onnxruntime, and int8 close to its fp32 source
    assert other[("teacher", "torch")] == pytest.approx(other[("teacher", "onnx-fp32")], abs=0.5)
    assert other[("student", "torch")] == pytest.approx(other[("student", "onnx-fp32")], abs=0.5)
    assert other[("student-int8-dynamic", "onnx-int8")] == pytest.approx(other[("student", "onnx-fp32")], abs=3)
    if task == "embedding":
        assert rows[("teacher", "torch")]["also"]["other_source"] == pytest.approx(100.0, abs=1e-3)
    assert "other source (data.other_source)" in (run / "report" / "report.md").read_text()


def test_frozen_token_embeddings_stay_the_teachers(text_run):
    """distill.freeze_embeddings: the student's (and the baseline's) token table is still the leading
    slice of the teacher's after training; the rest of the student did train."""
    from safetensors.torch import load_file

    task, run = text_run
    weights = {n: load_file(run / "distill" / n / "model.safetensors") for n in ("teacher", "student")}
    key = next(k for k in weights["student"] if k.endswith("word_embeddings.weight"))
    s, t = weights["student"][key], weights["teacher"][key]
    assert torch.equal(s, t[:, : s.shape[1]])
    layer = next(k for k in weights["student"] if "layer.0.output.dense.weight" in k)  # the teacher's layer 1
    trained, start = weights["student"][layer], weights["teacher"][layer.replace("layer.0", "layer.1")]
    assert not torch.equal(trained, start[: trained.shape[0], : trained.shape[1]])


def test_students_train_with_the_dropout_set_and_the_teacher_keeps_its_own(text_run):
    """distill.dropout: 0.0 reaches the KD student and the baseline, and their saved configs say so."""
    task, run = text_run
    names = ["teacher", "student"] + (["baseline"] if task == "classification" else [])
    for name in names:
        config = json.loads((run / "distill" / name / "config.json").read_text())
        rates = [config["hidden_dropout_prob"], config["attention_probs_dropout_prob"]]
        assert rates == ([0.1, 0.1] if name == "teacher" else [0.0, 0.0]), (name, rates)


def test_other_texts_are_refused_where_the_task_does_not_take_them(tmp_path, capsys):
    cfg = write_config(tmp_path, {"data.limit": 200, "data.extra_texts": "builtin:stdlib-sentences"})
    assert run_cli("all", str(cfg), "-q") == 2
    err = capsys.readouterr().err
    assert "data.extra_texts: the embedding and text-classification tasks take it" in err and "Traceback" not in err


def test_onnx_export_matches_torch(text_run):
    task, run = text_run
    out = _manifest(run)["stages"]["export"]["outputs"]
    for name, p in out["parity"].items():
        assert p["max_abs_diff"] < 1e-4, (name, p)
    torch_rows = {r["variant"]: r["metric"]["test"] for r in _manifest(run)["stages"]["distill"]["outputs"]["variants"]}
    for r in out["variants"]:
        assert r["metric"]["test"] == pytest.approx(torch_rows[r["variant"]], abs=1e-3)


def test_bundle_runs_in_plain_onnxruntime_with_its_tokenizer(text_run):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    task, run = text_run
    bundle = run / "export" / "bundle"
    info = json.loads((bundle / "kdpipe.json").read_text())
    tok = AutoTokenizer.from_pretrained(bundle)
    enc = tok(["def f(x): return x", "a for loop repeats"], padding=True, return_tensors="np")
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {i.name: enc[i.name].astype(np.int64) if i.name in enc else np.zeros_like(enc["input_ids"])
             for i in sess.get_inputs()}
    out = sess.run(None, feeds)[0]
    if task == "classification":
        assert info["labels"] == ["built-in-types", "data-model", "expressions", "statements"]
        assert out.shape == (2, 4)
    else:
        # the student (16 wide) projects onto the teacher's 32 dims: a drop-in for the teacher's index
        assert info["output"]["name"] == "sentence_embedding" and out.shape == (2, 32) == (
            2,
            info["output"]["shape"][1],
        )


def test_padding_does_not_change_a_texts_output(text_run):
    """The attention mask is honoured in the exported graph: the same text padded to two lengths gives
    the same output."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    _, run = text_run
    bundle = run / "export" / "bundle"
    tok = AutoTokenizer.from_pretrained(bundle)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    outs = []
    for length in (12, 24):
        enc = tok(["the with statement"], padding="max_length", max_length=length, return_tensors="np")
        feeds = {i.name: enc[i.name].astype(np.int64) if i.name in enc else np.zeros_like(enc["input_ids"])
                 for i in sess.get_inputs()}
        outs.append(sess.run(None, feeds)[0])
    assert np.allclose(outs[0], outs[1], atol=1e-3)


def _tiny_classifier_folder(path, labels):
    """A tiny fine-tuned classifier as a user would bring it: a folder with config, weights, tokenizer."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from kdpipe.data.registry import load_texts
    from kdpipe.data.text import train_tokenizer

    tok = train_tokenizer(load_texts("builtin:pydoc-paragraphs")[:200], "masked", 300)
    config = AutoConfig.for_model("bert", vocab_size=len(tok), num_labels=len(labels),
                                  id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)},
                                  max_position_embeddings=64, pad_token_id=tok.pad_token_id, **BERT)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_teacher_folder_with_other_labels_is_refused_unless_finetuned(tmp_path, capsys):
    folder = _tiny_classifier_folder(tmp_path / "teacher", ["negative", "positive"])
    cfg = text_config(tmp_path, "classification", **{"teacher.model": f"hf:{folder}", "distill.intermediate": {}})
    assert run_cli("all", str(cfg)) == 2
    err = capsys.readouterr().err
    assert "teacher.model: 2 labels, but the data has 4" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    cfg = text_config(tmp_path, "classification", **{"teacher.model": f"hf:{folder}", "teacher.finetune": True,
                                                      "distill.intermediate": {}})
    assert run_cli("distill", str(cfg), "-q") == 0
    out = _manifest(tmp_path / "run")["stages"]["distill"]["outputs"]
    assert out["training"]["teacher"]["source"] == f"hf:{folder}" and out["training"]["teacher"]["history"]


def test_layer_mapping_that_does_not_exist_is_refused(tmp_path, capsys):
    cfg = text_config(tmp_path, "classification", **{"distill.intermediate": {"hidden": [[1, 5]]}})
    assert run_cli("distill", str(cfg)) == 2
    assert "pair [1, 5] does not exist; the student has layers 0..1, the teacher 0..2" in capsys.readouterr().err


def test_intermediate_matching_is_refused_for_array_models(tmp_path, capsys):
    cfg = write_config(tmp_path, {"distill.intermediate": {"hidden": "auto"}})
    assert run_cli("distill", str(cfg)) == 2
    assert "layer matching needs transformers models" in capsys.readouterr().err


def test_hf_disk_dataset_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    from kdpipe.data.text import pydoc_paragraphs

    rows = pydoc_paragraphs()[:120]
    ds = datasets.Dataset.from_dict({"sentence": [r[0] for r in rows], "topic": [i % 2 for i in range(len(rows))]})
    ds = ds.cast_column("topic", datasets.ClassLabel(names=["even", "odd"]))
    datasets.DatasetDict({"train": ds.select(range(80)), "test": ds.select(range(80, 120))}).save_to_disk(
        tmp_path / "ds"
    )
    cfg = text_config(tmp_path, "classification", **{"data.source": f"hf-disk:{tmp_path / 'ds'}",
                                                      "data.text_column": "sentence", "data.label_column": "topic",
                                                      "data.limit": None, "distill.intermediate": {}})
    assert run_cli("distill", str(cfg), "-q") == 0
    out = _manifest(tmp_path / "run")["stages"]["distill"]["outputs"]
    assert out["labels"] == ["even", "odd"] and sum(out["split_sizes"].values()) == 120


def test_predict_runs_a_text_classification_bundle(text_run, tmp_path, capsys):
    task, run = text_run
    if task != "classification":
        pytest.skip("classification only")
    texts = tmp_path / "texts.txt"
    texts.write_text("The while statement repeats a block.\nstr.upper() returns a copy in upper case.\n")
    capsys.readouterr()
    assert run_cli("predict", str(run / "export" / "bundle"), str(texts), "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["label"] in ("built-in-types", "data-model", "expressions", "statements")
                                  for r in rows)
    assert run_cli("predict", str(run / "export" / "bundle"), str(tmp_path / "missing.txt")) == 2
    # a CSV in the training data's own layout: one prediction a row, the same as the texts alone
    info = json.loads((run / "export" / "bundle" / "kdpipe.json").read_text())
    assert info["text_column"] == "text" and info["label_column"] == "label"
    table = tmp_path / "labelled.csv"
    table.write_text('text,label\n"The while statement repeats a block.",statements\n'
                     '"str.upper() returns a copy in upper case.",built-in-types\n')
    assert run_cli("predict", str(run / "export" / "bundle"), str(table), "--json") == 0
    assert [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()] == [r["label"] for r in rows]
    # --text, stdin and the repository's example texts give the same labels; no transformers, no torch
    example = Path(__file__).parents[2] / "apps" / "examples" / "texts.txt"
    lines = example.read_text().splitlines()
    code = ("import sys; from kdpipe.cli import main; "
            f"main(['predict', {str(run / 'export' / 'bundle')!r}, {str(example)!r}, '-', "
            + ", ".join(f"'--text', {t!r}" for t in lines) + "]); "
            "print('heavy:', sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], input="\n".join(lines), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[-1] == "heavy: []"
    by_source = {}
    for line in out[:-1]:
        name, label = line.split("\t")[:2]
        by_source.setdefault(name.split("[")[0], []).append(label)
    assert len(by_source) == 3 and len({tuple(v) for v in by_source.values()}) == 1, by_source


def test_predict_prints_embeddings_of_an_embedding_bundle(text_run, tmp_path, capsys):
    """The vectors are the bundle's own outputs for those texts, as an app running the model gets them."""
    task, run = text_run
    if task != "embedding":
        pytest.skip("embedding only")
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from kdpipe.tasks.hf_data import encode

    bundle = run / "export" / "bundle"
    texts = ["The while statement repeats a block.", "str.upper() returns a copy in upper case."]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    capsys.readouterr()
    assert run_cli("predict", str(bundle), str(tmp_path / "texts.txt"), "--json") == 0
    got = np.array([json.loads(line)["embedding"] for line in capsys.readouterr().out.splitlines()])
    info = json.loads((bundle / "kdpipe.json").read_text())
    assert got.shape == (2, info["output"]["shape"][1])
    # a drop-in takes what the teacher takes: its 64 position embeddings, though trained on 24 tokens
    assert (info["max_sequence_length"], info["trained_sequence_length"]) == (64, 24)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    x = encode(AutoTokenizer.from_pretrained(bundle), texts, info["max_sequence_length"])
    want = sess.run(None, {"input_ids": x[:, 0], "attention_mask": x[:, 1]})[0]
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert not np.allclose(got[0], got[1])

    # The README's snippet (onnxruntime + tokenizers, one text at a time) gives the same vectors.
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "docs" / "bundles.md").read_text()
    code = re.search(r"## Text bundles in an app.*?```python\n(.*?)```", readme, re.S).group(1)
    code = code.replace('"artifacts/embedding/export/bundle"', repr(str(bundle)))
    scope: dict = {}
    exec(code, scope)
    assert scope["embedding"].shape == (info["output"]["shape"][1],)
    tok = AutoTokenizer.from_pretrained(bundle)
    for text in texts:  # one text at a time, unpadded, as the snippet runs it (a dynamic-int8 bundle's
        ids = tok([text], return_tensors="np")["input_ids"].astype(np.int64)  # scales depend on the padding)
        alone = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        np.testing.assert_allclose(scope["run"](text), alone, atol=1e-5)


def test_a_missing_teacher_folder_is_one_clear_error(tmp_path, capsys):
    cfg = text_config(tmp_path, "embedding", **{"teacher.model": "hf:artifacts/teachers/nowhere",
                                                "distill.intermediate": {}})
    assert run_cli("all", str(cfg)) == 2
    err = capsys.readouterr().err
    assert "folder artifacts/teachers/nowhere not found" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_teachers_maximum_length_comes_from_its_folder(tmp_path):
    from types import SimpleNamespace

    from kdpipe.config.schema import Config
    from kdpipe.tasks.hf_data import teacher_max_length

    teacher = SimpleNamespace(hf=SimpleNamespace(config=SimpleNamespace(max_position_embeddings=512)))
    tok = SimpleNamespace(model_max_length=128)
    cfg = Config.model_validate({"task": "embedding", "teacher": {"model": f"hf:{tmp_path}"},
                                 "data": {"sequence_length": 48}})
    assert teacher_max_length(cfg, tok, teacher) == 128  # the tokenizer's limit
    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 256}')
    assert teacher_max_length(cfg, tok, teacher) == 256  # sentence-transformers' own
    tok.model_max_length = 10**30  # "no limit" in transformers: the position embeddings decide
    (tmp_path / "sentence_bert_config.json").unlink()
    assert teacher_max_length(cfg, tok, teacher) == 512


def test_extra_texts_take_several_sources_without_repeats_or_held_out_texts(tmp_path):
    from kdpipe.config.load import load_config
    from kdpipe.tasks.hf_data import extra_texts

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["one sentence", "two sentences", "held out"]))
    b.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["two sentences", "three sentences"]))
    cfg = load_config(text_config(tmp_path, "embedding", **{"data.limit": None,
                                                             "data.extra_texts": [f"jsonl:{a}", f"jsonl:{b}"]}))
    assert extra_texts(cfg, {"held out"}) == ["one sentence", "two sentences", "three sentences"]
    cfg.data.extra_texts_max = 2  # a sample, the same on every run, in the sources' order
    two = extra_texts(cfg, {"held out"})
    assert len(two) == 2 and two == extra_texts(cfg, {"held out"}) and set(two) < {"one sentence", "two sentences",
                                                                                   "three sentences"}


def test_evaluate_scores_a_text_bundle_on_a_labelled_csv_and_an_embedder_against_another(text_run, tmp_path, capsys):
    """The other-source sentences as a held-out CSV in the training layout (text, label): scored with
    per-class figures; an embedding bundle is measured against a bundle (itself: 100); labels the
    bundle does not know and an embedder without --vs are one line each."""
    import csv

    task, run = text_run
    bundle = run / "export" / "bundle"
    with open(tmp_path / "held.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *OTHER, *OTHER])
    capsys.readouterr()
    if task == "classification":
        assert run_cli("evaluate", str(bundle), str(tmp_path / "held.csv"), "--json") == 0
        result = json.loads(capsys.readouterr().out)
        mine = result["bundles"][0]
        assert result["samples"] == 8 and sum(c["count"] for c in mine["per_class"]) == 8
        assert np.asarray(mine["confusion"]["matrix"]).sum() == 8
        (tmp_path / "bad.csv").write_text("text,label\n" + "A sentence.,no-such-section\n" * 3)
        assert run_cli("evaluate", str(bundle), str(tmp_path / "bad.csv")) == 2
        assert "labels ['no-such-section'] are not this bundle's labels" in capsys.readouterr().err
        assert run_cli("evaluate", str(bundle), str(tmp_path / "held.csv"), "--label-column", "section") == 2
        assert "no column 'section'" in capsys.readouterr().err
    else:
        assert run_cli("evaluate", str(bundle), str(tmp_path / "held.csv")) == 2
        assert "give --vs OTHER_BUNDLE" in capsys.readouterr().err
        assert run_cli("evaluate", str(bundle), str(tmp_path / "held.csv"), "--vs", str(bundle), "--json") == 0
        result = json.loads(capsys.readouterr().out)
        assert result["bundles"][0]["value"] == pytest.approx(100.0, abs=1e-3)
        assert result["metric"]["name"].startswith("cosine similarity to")

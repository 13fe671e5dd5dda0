"""causal-lm and masked-lm through every stage, on tiny transformers built from configs (no downloads)."""

import json

import numpy as np
import pytest

from kdpipe.bundle.generate import Generator, Sampling
from kdpipe.runtime.sessions import input_names, make_session
from kdpipe.tasks import TASKS
from tests.conftest import run_cli, write_config

TINY_LM = {
    "causal-lm": {"teacher.model": "hf-config:gpt2", "teacher.params": {"n_layer": 2, "n_embd": 32, "n_head": 2}},
    "masked-lm": {"teacher.model": "hf-config:bert",
                  "teacher.params": {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2,
                                     "intermediate_size": 64}},
}


def lm_config(folder, lm_task, **extra):
    return write_config(folder, {
        "task": lm_task, "data.source": "builtin:pydoc-topics", "data.sequence_length": 32, "data.vocab_size": 300,
        "data.limit": 80, "data.batch_size": 8, "teacher.train": {"epochs": 1, "lr": 0.003},
        "student.model": "derive:teacher", "student.params": {"layers": [1]}, "distill.epochs": 1,
        "distill.temperature": 1.0, "distill.alpha": 0.5, "prune.enabled": False,
        "quantize.variants": ["dynamic", "static", "fp16", "int4", "qad-int8", "qad-int4"],
        "quantize.calibration": ["minmax"],
        "quantize.calibration_samples": 8, "benchmark.providers": ["cpu"], "benchmark.batch_sizes": [1, 2],
        "benchmark.rounds": 2, "benchmark.prompt_tokens": 8, "benchmark.new_tokens": 6,
        "export.max_drop": 1000.0, **TINY_LM[lm_task], **extra})


@pytest.fixture(params=sorted(TINY_LM))
def lm_run(request, lm_runs):
    return request.param, lm_runs[request.param]


def test_every_stage_runs_and_the_report_uses_the_task_metric(lm_run):
    task, run = lm_run
    report = json.loads((run / "report" / "report.json").read_text())
    name = {"causal-lm": "perplexity", "masked-lm": "masked-token accuracy"}[task]
    assert report["metric"]["name"] == name and report["metric"]["higher_is_better"] == (task == "masked-lm")
    rows = {(r["variant"], r["format"]): r for r in report["rows"]}
    assert {("teacher", "torch"), ("baseline", "torch"), ("student", "torch"), ("student", "onnx-fp32"),
            ("student-int8-dynamic", "onnx-int8"), ("student-int8-static-minmax", "onnx-int8")} <= set(rows)
    assert rows[("student", "torch")]["params"] < rows[("teacher", "torch")]["params"]
    fused = rows[("student-fp32-fused", "onnx-fp32")]["quantization"]
    assert fused["fusions"].get("SkipLayerNormalization")  # onnxruntime's transformer fusions ran
    assert rows[("student-int8-dynamic-fused", "onnx-int8")]["quantization"]["fused"]
    assert "gain_points" in report["kd"]
    int4 = rows[("student-int4", "onnx-int4")]  # weight-only int4: every weight matrix and embedding table
    ops = int4["quantization"]["ops"]
    assert ops["MatMulNBits"] + ops["GatherBlockQuantized"] == int4["quantization"]["weight_matrices"] >= 4
    assert int4["size_bytes"] < rows[("student", "onnx-fp32")]["size_bytes"]
    # quantization-aware distillation: the exported graph (KV cache included for the causal LM) gives the
    # fake-quantized model's tokens, in the post-training copy's operators
    for name, op in (("student-int8-qad", "MatMulInteger"), ("student-int4-qad", "MatMulNBits")):
        qad = rows[(name, "onnx-int8" if "int8" in name else "onnx-int4")]["quantization"]
        assert qad["ops"].get(op) and qad["qad"]["export_agreement_val"] >= 99.5, (name, qad["qad"])
    if task == "causal-lm":  # generation timed for every ONNX variant, cached and not, and the PyTorch teacher
        gen = report["generation"]
        assert (gen["prompt_tokens"], gen["new_tokens"]) == (8, 6)
        timed = {(m["variant"], m["format"]) for m in gen["models"] if m["cached"]["decode_tokens_per_s"] > 0
                 and m["prefix_rerun"]["decode_tokens_per_s"] > 0}
        assert {("teacher", "torch"), ("student-int4", "onnx-int4"), ("student", "onnx-fp32")} <= timed
        assert sum(m["bundle"] for m in gen["models"]) == 1
        assert (run / "report" / "accuracy_vs_decode_speed.png").is_file()
        assert "## Generation" in (run / "report" / "report.md").read_text()
    else:
        assert report["generation"] is None
    # every model trains the configured epoch over whole blocks (unmasked positions are not unlabelled rows)
    training = json.loads((run / "manifest.json").read_text())["stages"]["distill"]["outputs"]["training"]
    assert [len(training[m]["history"]) for m in ("teacher", "baseline", "student")] == [1, 1, 1]
    assert json.loads((run / "manifest.json").read_text())["stages"]["prune"]["outputs"]["skipped"]


def test_onnx_export_matches_torch_on_real_inputs(lm_run):
    task, run = lm_run
    out = json.loads((run / "manifest.json").read_text())["stages"]["export"]["outputs"]
    for name, p in out["parity"].items():
        assert p["max_abs_diff"] < 1e-3 and p["agreement"] > 99.0, (name, p)
    rows = {r["variant"]: r["metric"]["test"] for r in out["variants"]}
    torch_rows = {r["variant"]: r["metric"]["test"]
                  for r in json.loads((run / "manifest.json").read_text())["stages"]["distill"]["outputs"]["variants"]}
    for name in rows:
        assert rows[name] == pytest.approx(torch_rows[name], rel=1e-3)


def test_bundle_has_model_tokenizer_and_config_and_runs(lm_run):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    task, run = lm_run
    bundle = run / "export" / "bundle"
    info = json.loads((bundle / "kdpipe.json").read_text())
    assert info["task"] == task and {"model.onnx", "tokenizer.json", "config.json"} <= {
        p.name for p in bundle.iterdir()
    }
    tok = AutoTokenizer.from_pretrained(bundle)
    ids = np.asarray([tok("def f(x): return x", add_special_tokens=False)["input_ids"]], dtype=np.int64)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    assert Generator(sess).run(ids)[0].shape == (1, ids.shape[1], len(tok))
    if task == "causal-lm":  # one graph with a KV cache, described for apps in kdpipe.json
        kv = info["kv_cache"]
        assert (
            kv["layers"] == 1 and "past_key_values.0.key" in info["inputs"] and kv["eos_token_id"] == tok.eos_token_id
        )


def test_causal_bundle_loads_with_optimum(lm_run):
    task, run = lm_run
    if task != "causal-lm":
        pytest.skip("causal only")
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    model = ORTModelForCausalLM.from_pretrained(run / "export" / "bundle", use_cache=True, use_io_binding=False)
    out = model.generate(torch.tensor([[1, 2, 3]]), attention_mask=torch.ones(1, 3, dtype=torch.long), do_sample=False,
                         max_new_tokens=5, min_new_tokens=5, pad_token_id=0)
    gen = Generator(make_session(run / "export" / "bundle" / "model.onnx", "cpu")[0])
    assert out[0, 3:].tolist() == list(gen.generate([1, 2, 3], Sampling(max_new_tokens=5)))


@pytest.mark.parametrize("divergence", ["reverse_kl", "jsd"])
def test_other_divergences_train(tmp_path, divergence):
    cfg = lm_config(tmp_path, "causal-lm", **{"distill.divergence": divergence, "distill.beta": 0.3})
    assert run_cli("distill", str(cfg), "-q") == 0


def test_vocabulary_mismatch_is_refused_before_training(tmp_path, capsys):
    cfg = lm_config(tmp_path, "causal-lm", **{"student.model": "hf-config:gpt2",
                                              "student.params": {"n_layer": 1, "n_embd": 32, "n_head": 2,
                                                                 "vocab_size": 999}})
    assert run_cli("all", str(cfg)) == 2
    assert "teacher and student vocabularies differ" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_predict_scores_and_continues_or_fills_masks(lm_run, tmp_path, capsys):
    """causal-lm: each line's perplexity (the metric's own arithmetic on the bundle's logits) and a
    greedy continuation; masked-lm: the line with its mask tokens filled."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from kdpipe.metrics import PERPLEXITY

    task, run = lm_run
    bundle = run / "export" / "bundle"
    tok = AutoTokenizer.from_pretrained(bundle)
    lines = ["The for statement iterates over the items of a sequence.", "A class defines new objects."]
    if task == "masked-lm":
        lines = [f"The for statement iterates over the {tok.mask_token} of a sequence."]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert run_cli("predict", str(bundle), str(tmp_path / "in.txt"), "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(lines)
    if task == "masked-lm":
        assert tok.mask_token not in rows[0]["filled"] and rows[0]["filled"].startswith("the for statement")
        return
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    for line, row in zip(lines, rows):
        max_len = json.loads((bundle / "kdpipe.json").read_text())["max_sequence_length"]
        ids = np.asarray([tok(line)["input_ids"][:max_len]], dtype=np.int64)  # predict cuts there too
        feeds = TASKS["causal-lm"].feeds(input_names(sess), ids)  # the whole line, an empty past
        logits = sess.run(None, feeds)[0]
        want = PERPLEXITY.finish(*PERPLEXITY.partial(logits, ids))
        assert row["perplexity"] == pytest.approx(want, rel=1e-6) and isinstance(row["continuation"], str)


@pytest.mark.parametrize("fmt", ["topk", "sampled"])
def test_sparse_teacher_cache_trains_and_records_its_storage(tmp_path, fmt):
    cfg = lm_config(tmp_path, "causal-lm", **{"distill.cache_format": fmt, "distill.cache_k": 8,
                                              "distill.baseline": False})
    assert run_cli("distill", str(cfg), "-q") == 0
    out = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["distill"]["outputs"]
    cache = out["training"]["student"]["teacher_cache"]
    n_train = out["split_sizes"]["train"]
    assert cache["format"] == fmt and cache["bytes"] == n_train * 32 * 8 * 6  # 32 tokens, 8 entries, 6 bytes


@pytest.mark.parametrize("task, change, message", [
    ("classification", {"data.source": "builtin:digits", "teacher.model": "builtin:cnn", "teacher.params": {},
                        "student.model": "builtin:mlp", "student.params": {}}, "sparse caches are for language"),
    ("causal-lm", {"distill.divergence": "jsd"}, "jsd needs the teacher's whole distribution"),
])
def test_sparse_cache_config_errors(tmp_path, capsys, task, change, message):
    cfg = lm_config(tmp_path, "causal-lm", **{"task": task, "distill.cache_format": "topk", **change})
    assert run_cli("distill", str(cfg)) == 2
    assert message in capsys.readouterr().err


BERT_STUDENT = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def test_an_encoder_architecture_student_learns_next_tokens_through_every_stage(tmp_path):
    """BERT with a causal mask (is_decoder: transformers' BertLMHeadModel) as the student of the GPT-2
    teacher: optimum has no text-generation recipe for BERT, so it exports through torch.onnx, with
    parity, int8 and a bundle."""
    cfg = lm_config(tmp_path, "causal-lm", **{"student.model": "hf-config:bert",
                                              "student.params": {**BERT_STUDENT, "is_decoder": True},
                                              "benchmark.providers": ["cpu"]})
    assert run_cli("all", str(cfg), "-q") == 0
    out = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    assert all(p["max_abs_diff"] < 1e-4 and p["agreement"] == 100.0 and p["cached_max_abs_diff"] < 1e-4
               for p in out["export"]["outputs"]["parity"].values())  # with its KV cache, token by token
    rows = {r["variant"]: r for r in out["quantize"]["outputs"]["variants"]}
    assert "student-fp32-fused" not in rows  # no BERT fusions
    student = next(r for r in out["export"]["outputs"]["variants"] if r["variant"] == "student")
    # int8 keeps the student's perplexity (122.60 against 122.60 when measured)
    assert rows["student-int8-dynamic"]["metric"]["test"] == pytest.approx(student["metric"]["test"], rel=0.02)
    bundle = tmp_path / "run" / "export" / "bundle"
    assert json.loads((bundle / "config.json").read_text())["is_decoder"] is True
    assert (bundle / "model.onnx").is_file() and (bundle / "README.md").is_file()


def test_pruning_a_family_it_does_not_know_is_refused_before_training(tmp_path, capsys):
    cfg = lm_config(tmp_path, "causal-lm", **{"prune.enabled": True})
    assert run_cli("all", str(cfg)) == 2
    err = capsys.readouterr().err
    assert "prune.enabled: the student (gpt2): transformer pruning knows BERT-family blocks" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_bidirectional_encoder_is_refused_for_next_token_prediction(tmp_path, capsys):
    cfg = lm_config(tmp_path, "causal-lm", **{"student.model": "hf-config:bert", "student.params": BERT_STUDENT})
    assert run_cli("all", str(cfg)) == 2
    err = capsys.readouterr().err
    assert "student.model: a bert model that attends to later tokens cannot learn next-token prediction" in err
    assert "is_decoder: true" in err and not (tmp_path / "run").exists()


def test_predict_generates_with_the_cache_and_its_options(lm_run, capsys):
    task, run = lm_run
    if task != "causal-lm":
        pytest.skip("causal only")
    bundle = str(run / "export" / "bundle")

    def gen(*flags):
        capsys.readouterr()
        assert run_cli("predict", bundle, "--text", "The for statement", "--json", *flags) == 0
        return json.loads(capsys.readouterr().out)

    assert gen("--max-new-tokens", "5")["tokens"] <= 5
    sampled = [gen("--temperature", "1.5", "--top-k", "50", "--top-p", "0.95", "--seed", "3")["continuation"]
               for _ in range(2)]
    assert sampled[0] == sampled[1]  # the same seed, the same text
    assert (
        gen("--max-new-tokens", "8", "--temperature", "0")["continuation"]
        == gen("--max-new-tokens", "8")["continuation"]
    )


def test_the_causal_cards_snippet_generates_with_the_cache_as_predict_does(lm_run, monkeypatch, capsys):
    task, run = lm_run
    if task != "causal-lm":
        pytest.skip("causal only")
    bundle = run / "export" / "bundle"
    code = (bundle / "README.md").read_text().split("```python\n")[1].split("```")[0]
    assert "past_key_values" in code and "present." in code
    monkeypatch.chdir(bundle)
    scope = {}
    exec(code, scope)  # noqa: S102 - our own generated snippet
    capsys.readouterr()
    assert run_cli("predict", str(bundle), "--text", "The for statement", "--json", "--max-new-tokens", "7") == 0
    assert scope["generate"]("The for statement", 7) == json.loads(capsys.readouterr().out)["continuation"]


def test_the_causal_bundle_generates_predicts_tokens_in_onnxruntime_genai(lm_run):
    """The bundle's genai_config.json, as export writes it, loads in onnxruntime-genai (kdpipe[genai])."""
    task, run = lm_run
    if task != "causal-lm":
        pytest.skip("causal only")
    og = pytest.importorskip("onnxruntime_genai")
    bundle = run / "export" / "bundle"
    info = json.loads((bundle / "kdpipe.json").read_text())
    model = og.Model(str(bundle))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=3 + 5)
    g = og.Generator(model, params)
    g.append_tokens([[1, 2, 3]])
    tokens = []
    while not g.is_done():
        g.generate_next_token()
        tokens.append(int(g.get_next_tokens()[0]))
    gen = Generator(make_session(bundle / "model.onnx", "cpu")[0])
    assert tokens == list(gen.generate([1, 2, 3], Sampling(max_new_tokens=5), info["kv_cache"]["eos_token_id"]))

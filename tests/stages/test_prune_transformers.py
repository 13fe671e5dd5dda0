"""The prune stage on transformers: width (hidden channels with their heads, FFN neurons) and depth
pruned by activation importance, recovered with KD plus hidden-state matching, then exported with
parity and quantized; tiny BERTs built here (no downloads)."""

import json

import pytest

from tests.conftest import run_cli
from tests.tasks.test_text_tasks import text_config


@pytest.fixture(scope="module", params=["embedding", "classification"])
def pruned_run(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"prune-{request.param}")
    cfg = text_config(folder, request.param, **{
        "student.params": {"layers": [0, 1]}, "prune.enabled": True, "prune.hidden": 0.5, "prune.ffn": 0.5,
        "prune.layers": 1, "prune.finetune": {"epochs": 1, "lr": 0.003}, "distill.intermediate": {"hidden": "auto"},
        "quantize.variants": ["dynamic"], "benchmark.sequence_lengths": None, "benchmark.batch_sizes": [1],
        # any int8 loss is over budget, and the coarsest int8 (plain 8-bit weights) loses most: the
        # accuracy-aware search runs
        "quantize.per_channel": False, "quantize.reduce_range": False, "export.max_drop": 0.0})
    assert run_cli("all", str(cfg), "-q") == 0
    return request.param, folder / "run"


def _outputs(run, stage):
    return json.loads((run / "manifest.json").read_text())["stages"][stage]["outputs"]


def test_the_student_is_pruned_in_width_and_depth_and_recovered(pruned_run):
    task, run = pruned_run
    p = _outputs(run, "prune")
    r = p["removed"]
    assert r["hidden_size"] == [32, 16] and r["attention_heads"] == [2, 1] and r["intermediate_size"] == [64, 32]
    assert len(r["layers_kept"]) == 1 and r["layers_before"] == 2
    assert p["params_after"] < p["params_before"] / 2
    assert len(p["recovery"]["history"]) == 1
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["prune"]["removed"]["removed"].startswith("hidden 32->16")
    assert "Pruning: hidden 32->16, heads 2->1 a block" in (run / "report" / "report.md").read_text()


def test_distillation_and_recovery_match_hidden_states_from_the_teacher_cache(pruned_run):
    """The teacher ran once over the training texts for each training, not on every step."""
    task, run = pruned_run
    student = _outputs(run, "distill")["training"]["student"]["teacher_cache"]
    recovery = _outputs(run, "prune")["recovery"]["teacher_cache"]
    assert student["hidden_layers"] == [0, 1, 2] and not student["reused"]
    assert recovery["hidden_layers"] and recovery["bytes"] > 0


def test_the_pruned_model_reloads_with_from_pretrained_exports_with_parity_and_quantizes(pruned_run):
    import transformers

    task, run = pruned_run
    auto = transformers.AutoModel if task == "embedding" else transformers.AutoModelForSequenceClassification
    model = auto.from_pretrained(run / "prune" / "pruned")
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    parity = _outputs(run, "export")["parity"]["pruned"]
    assert parity["max_abs_diff"] < 1e-4
    q = _outputs(run, "quantize")
    assert q["source"] == "pruned" and any(v["variant"] == "pruned-int8-dynamic" for v in q["variants"])


def test_int8_over_budget_starts_the_sensitivity_search_and_the_report_says_what_stayed_float(pruned_run):
    task, run = pruned_run
    q = _outputs(run, "quantize")
    report = json.loads((run / "report" / "report.json").read_text())
    # the search starts from the student's int8 variant of the plain graph (the fused one it cannot search)
    # that damaged its fp32 source least on validation: when that is within export.max_drop (0 here) on
    # this tiny model, no search is needed
    best = min(
        v["vs_source"]["damage_val"]
        for v in q["variants"]
        if v["format"] == "onnx-int8"
        and v["source"] == "pruned"
        and not v["quantization"].get("fused")
        and not v["variant"].endswith("-mixed")
    )
    if task == "classification":  # no int8 copy changed an answer of this tiny classifier: nothing to search
        assert best == 0.0 and "int8_search" not in q
        return
    assert best > 0.0  # the embedder's int8 copies move its cosines past max_drop 0: the search runs
    assert any(b["variant"] == "pruned-int8-dynamic" for b in report["int8"]["over_budget"])
    s = q["int8_search"]
    assert s["from"] == "pruned-int8-dynamic" and s["nodes"] > 0 and s["tried"] and s["most_sensitive"]
    md = (run / "report" / "report.md").read_text()
    assert "Accuracy-aware int8: pruned-int8-dynamic lost" in md
    if s["found"]:
        mixed = next(v for v in q["variants"] if v["variant"] == "pruned-int8-dynamic-mixed")
        assert mixed["quantization"]["kept_float"] == s["kept_float"]
        # back to the fp32 metric (onnxruntime against torch: float noise apart)
        assert mixed["metric"]["val"] == pytest.approx(_outputs(run, "prune")["variants"][0]["metric"]["val"], abs=0.01)
    bundle = _outputs(run, "export")["bundle"]
    assert bundle["choice"]["max_drop"] == 0.0


def test_heads_pruned_past_the_width_keep_the_width_reload_and_export_with_parity(tmp_path):
    """prune.hidden 0 with prune.heads 0.5: every block loses half its heads (transformers'
    pruned_heads) and the residual width stays."""
    import transformers

    cfg = text_config(tmp_path, "embedding", **{
        "student.params": {"layers": [0, 1]}, "prune.enabled": True, "prune.hidden": 0.0, "prune.heads": 0.5,
        "prune.ffn": 0.5, "prune.finetune": {"epochs": 1, "lr": 0.003}, "quantize.enabled": False,
        "benchmark.sequence_lengths": None, "benchmark.batch_sizes": [1]})
    assert run_cli("all", str(cfg), "-q") == 0
    run = tmp_path / "run"
    r = _outputs(run, "prune")["removed"]
    assert r["hidden_size"] == [32, 32] and r["attention_heads"] == [2, 1] and r["intermediate_size"] == [64, 32]
    model = transformers.AutoModel.from_pretrained(run / "prune" / "pruned")
    assert model.config.hidden_size == 32 and model.config.pruned_heads == {0: [1], 1: [1]}
    assert model.encoder.layer[0].attention.self.query.out_features == 16
    assert _outputs(run, "export")["parity"]["pruned"]["max_abs_diff"] < 1e-4


def test_more_heads_than_the_pruned_width_holds_is_refused_before_training(tmp_path, capsys):
    cfg = text_config(tmp_path, "embedding", **{"student.params": {"layers": [0, 1]}, "prune.enabled": True,
                                                "prune.hidden": 0.5, "prune.heads": 0.0})
    assert run_cli("all", str(cfg), "-q") == 2
    err = capsys.readouterr().err
    assert "prune.heads: keeping 2 of 2 heads needs a hidden width of 32; prune.hidden leaves 16" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()

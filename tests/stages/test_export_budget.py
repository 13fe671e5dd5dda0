"""export.budget and the no-KD student as a candidate, through `kdpipe all` on the tiny config."""

import json

from tests.conftest import run_cli, write_config

FAST = {"benchmark.providers": ["cpu"], "benchmark.batch_sizes": [1], "quantize.variants": ["dynamic"]}


def _stages(run):
    return json.loads((run / "manifest.json").read_text())["stages"]


def test_a_budget_no_variant_meets_stops_at_export_naming_the_nearest_and_keeps_the_rest(tmp_path, capsys):
    cfg = write_config(tmp_path, {**FAST, "export.budget": {"latency_ms": 0.000001}})
    assert run_cli("all", str(cfg), "-q") == 2
    err = capsys.readouterr().err
    assert "export.budget: no variant meets latency <= 1e-06 ms on this machine; the nearest is " in err
    assert "latency_ms misses by" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    done = set(_stages(tmp_path / "run"))
    assert {"distill", "prune", "quantize"} <= done and "export" not in done
    # a budget the run can meet: the most accurate variant that meets it ships, with every margin recorded
    assert run_cli("all", str(cfg), "-q", "--set", "export.budget={size_mb: 1000}") == 0
    choice = _stages(tmp_path / "run")["export"]["outputs"]["bundle"]["choice"]
    assert choice["rule"] == "budget" and all(c["margin"]["size_mb"] > 0 for c in choice["candidates"])


def test_where_kd_did_not_pay_the_no_kd_student_and_its_int8_copy_are_candidates(tmp_path):
    """An untrained teacher (teacher.train.epochs: 0) teaches noise: the student trained without KD is
    ahead on validation, gets an int8 copy, and both are bundle candidates."""
    cfg = write_config(tmp_path, {**FAST, "teacher.train.epochs": 0, "prune.enabled": False})
    assert run_cli("all", str(cfg), "-q") == 0
    stages = _stages(tmp_path / "run")
    rows = {r["variant"]: r for r in stages["distill"]["outputs"]["variants"]}
    assert rows["baseline"]["metric"]["val"] > rows["student"]["metric"]["val"]
    copy = next(r for r in stages["quantize"]["outputs"]["variants"] if r["variant"] == "baseline-int8-dynamic")
    assert copy["source"] == "baseline" and copy["quantization"]["no_distillation"]
    candidates = {c["variant"] for c in stages["export"]["outputs"]["bundle"]["choice"]["candidates"]}
    assert {"baseline-fp32", "baseline-int8-dynamic", "student-fp32"} <= candidates

"""Skip/rerun logic, single-stage commands and their errors, on the tiny config."""

import json

import pytest

from kdpipe.config.load import load_config
from kdpipe.errors import RunFolderError
from kdpipe.pipeline import runner
from kdpipe.stages import ORDER
from tests.conftest import run_cli, write_config


def _ids(run_dir):
    m = json.loads((run_dir / "manifest.json").read_text())
    return {k: v["run_id"] for k, v in m["stages"].items()}


def test_unchanged_config_skips_and_changed_section_reruns_it_and_what_follows(tmp_path, capsys):
    cfg_path = write_config(tmp_path, {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]})
    assert run_cli("all", str(cfg_path), "-q") == 0
    first = _ids(tmp_path / "run")
    assert set(first) == set(ORDER)

    assert run_cli("all", str(cfg_path)) == 0
    assert _ids(tmp_path / "run") == first
    assert "[distill] up to date, skipped" in capsys.readouterr().err

    assert run_cli("all", str(cfg_path), "--set", "export.max_drop=0.5") == 0
    after = _ids(tmp_path / "run")
    assert after["prune"] == first["prune"]  # before the changed section: kept
    assert all(after[s] != first[s] for s in ("quantize", "export", "benchmark", "report"))
    assert "config changed (export.max_drop)" in capsys.readouterr().err

    assert run_cli("prune", str(cfg_path), "--set", "export.max_drop=0.5", "--force", "-q") == 0
    forced = _ids(tmp_path / "run")
    assert forced["prune"] != after["prune"] and forced["distill"] == after["distill"]
    cfg = load_config(cfg_path, ["export.max_drop=0.5"])
    assert runner.why_stale("quantize", cfg, runner.RunStore(cfg.run_dir())) == "prune was rerun"


def test_a_changed_file_makes_its_stage_rerun(tmp_path):
    cfg_path = write_config(tmp_path, {"quantize.enabled": False, "benchmark.providers": ["cpu"]})
    assert run_cli("all", str(cfg_path), "-q") == 0
    cfg = load_config(cfg_path)
    store = runner.RunStore(cfg.run_dir())
    (tmp_path / "run" / "export" / "student.onnx").write_bytes(b"garbage")
    assert runner.why_stale("export", cfg, store) == "export/student.onnx was changed since it was written"
    assert run_cli("all", str(cfg_path), "-q") == 0
    assert runner.why_stale("export", cfg, store) is None


def test_single_stage_without_upstream_says_what_to_run_first(tmp_path, capsys):
    cfg_path = write_config(tmp_path)
    assert run_cli("quantize", str(cfg_path)) == 2
    err = capsys.readouterr().err
    assert "stage 'quantize' needs 'distill', which has not run" in err and f"kdpipe distill {cfg_path}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_stages_one_by_one_equal_all(tmp_path):
    cfg_path = write_config(tmp_path, {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]})
    for stage in ORDER:
        assert run_cli(stage, str(cfg_path), "-q") == 0
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert {r["variant"] for r in report["rows"]} >= {"teacher", "student", "baseline", "pruned", "pruned-int8-dynamic"}
    with pytest.raises(RunFolderError, match="needs the results of 'nothing'"):
        from kdpipe.run.context import StageContext

        StageContext(load_config(cfg_path), runner.RunStore(tmp_path / "run"), tmp_path, "x").upstream("nothing")

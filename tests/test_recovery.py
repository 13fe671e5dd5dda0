"""Damaged run folders are detected and repaired by the next run; unsafe output folders are refused."""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import run_cli, write_config

CORRUPTIONS = [
    ("distill", "distill/teacher.safetensors"),
    ("prune", "prune/pruned.safetensors"),
    ("quantize", "quantize/pruned-int8-dynamic.onnx"),
    ("export", "export/bundle/kdpipe.json"),
    ("export", "export/student.onnx"),
    ("benchmark", "benchmark/latency.json"),
    ("report", "report/report.html"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recover")
    cfg = write_config(folder, {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]})
    assert run_cli("all", str(cfg), "-q") == 0
    return folder, cfg


def _metrics(run):
    rows = json.loads((run / "report" / "report.json").read_text())["rows"]
    return {(r["variant"], r["format"]): r["metric"]["value"] for r in rows}


@pytest.mark.parametrize("stage, rel", CORRUPTIONS + [("all", "manifest.json")], ids=lambda v: str(v))
def test_each_damaged_artifact_is_detected_and_rebuilt(finished_run, tmp_path, capsys, stage, rel):
    src, _ = finished_run
    shutil.copytree(src, tmp_path, dirs_exist_ok=True)
    cfg = write_config(tmp_path, {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]})
    run = tmp_path / "run"
    before = _metrics(run)
    target = run / rel
    target.write_bytes(target.read_bytes()[: max(1, target.stat().st_size // 2)])  # truncated
    capsys.readouterr()
    assert run_cli("all", str(cfg)) == 0
    err = capsys.readouterr().err
    if stage == "all":
        assert "manifest.json was unreadable" in err and "[distill] running: not run yet" in err
    else:
        assert f"[{stage}] running: {rel} was changed since it was written" in err
    assert _metrics(run) == before
    from kdpipe.run.store import RunStore

    assert all(
        RunStore(run).problems(s) == [] for s in ("distill", "prune", "quantize", "export", "benchmark", "report")
    )


def test_a_damaged_upstream_file_stops_a_single_stage_with_the_command_to_run(finished_run, tmp_path, capsys):
    src, _ = finished_run
    shutil.copytree(src, tmp_path, dirs_exist_ok=True)
    cfg = write_config(tmp_path, {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]})
    (tmp_path / "run" / "prune" / "pruned.safetensors").write_bytes(b"")
    assert run_cli("export", str(cfg)) == 2
    assert "needs 'prune', which is out of date (prune/pruned.safetensors was changed" in capsys.readouterr().err


def test_a_changed_data_file_reruns_distill(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 1, 8, 8)).astype(np.float32), np.arange(60) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cfg = write_config(tmp_path, {"data.source": f"npz:{tmp_path / 'd.npz'}", "data.limit": None,
                                  "quantize.enabled": False, "benchmark.providers": ["cpu"]})
    assert run_cli("distill", str(cfg), "-q") == 0
    np.savez(tmp_path / "d.npz", x=x[::-1].copy(), y=y)
    capsys.readouterr()
    assert run_cli("distill", str(cfg)) == 0
    assert "[distill] running: input files changed (data)" in capsys.readouterr().err


def test_output_dir_that_is_not_a_run_folder_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "thesis.tex").write_text("precious")
    cfg = write_config(tmp_path)
    assert run_cli("all", str(cfg)) == 2
    assert "is not empty and is not a kdpipe run folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["thesis.tex"]


def test_teacher_and_student_outputs_must_line_up(tmp_path, capsys):
    cfg = write_config(tmp_path, {"student.model": "python:tests.helpers:wrong_outputs", "student.params": {}})
    assert run_cli("all", str(cfg)) == 2
    assert "outputs (2, 11) for 2 samples, but the data has 10 classes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

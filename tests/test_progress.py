"""kdpipe.progress: in a log (stderr not a terminal) one line per epoch, never carriage-return redraws."""

import subprocess
import sys

import pytest

from kdpipe.progress import progress
from tests.conftest import write_config

pytestmark = pytest.mark.fast  # runs no pipeline


def test_an_epoch_loop_writes_one_line_per_epoch_with_its_figures(capsys, monkeypatch):
    import kdpipe.progress

    monkeypatch.setattr(kdpipe.progress, "_quiet", False)  # an earlier in-process run may have left -q set
    bar = progress(range(1, 4), desc="distill student", unit="epoch")
    for epoch in bar:
        bar.set_postfix(loss=f"{1 / epoch:.4f}", val="97.60%")
    for _ in progress(["a", "b"], desc="export", unit="model"):  # other loops: their stage says what they did
        pass
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 3
    assert lines[0].startswith("[distill student] epoch 1/3: loss 1.0000, val 97.60% (")
    assert lines[2].startswith("[distill student] epoch 3/3: loss 0.3333")


def test_a_training_stage_logged_to_a_file_has_no_redraws(tmp_path):
    cfg = write_config(tmp_path, {"prune.enabled": False, "quantize.variants": ["dynamic"]})
    r = subprocess.run([sys.executable, "-m", "kdpipe", "distill", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    epochs = [line for line in r.stderr.splitlines() if " epoch " in line and line.startswith("[")]
    assert len(epochs) == 2 + 2 + 2, r.stderr  # teacher, student and no-KD baseline: 2 epochs each

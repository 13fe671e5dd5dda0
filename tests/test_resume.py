"""Kill `kdpipe all` (SIGKILL) at several points, restart it each time, and get the same run folder as a
run that was never interrupted: every file byte for byte (by the manifest's sha256), except the files
that hold timings, whose metrics are compared instead. Ctrl-C stops cleanly and keeps the checkpoint."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import write_config

# Every training stage checkpoints each epoch: with 3 epochs a kill at the first checkpoint lands
# inside the stage; the stages after training last long enough for a kill when their staging folder appears.
SLOWER = {"data.limit": 1000, "teacher.train.epochs": 3, "distill.epochs": 3, "prune.finetune.epochs": 3,
          "benchmark.min_seconds": 0.05, "benchmark.providers": ["cpu"],
          "quantize.variants": ["dynamic", "static", "fp16", "qad-int8"], "quantize.qad.epochs": 3}

KILL_POINTS = [
    ("teacher training", "distill", ".checkpoints/distill/teacher.pt"),
    ("student training", "distill", ".checkpoints/distill/student.pt"),
    ("pruning recovery", "prune", ".checkpoints/prune/pruned.pt"),
    ("quantization", "quantize", ".staging/quantize"),
    ("quantization-aware distillation", "quantize", ".checkpoints/quantize/pruned-int8-qad.pt"),
    ("export", "export", ".staging/export"),
    ("benchmark", "benchmark", ".staging/benchmark"),
    ("report", "report", ".staging/report"),
]
# The files that hold latencies, durations or dates: they differ between any two runs (found by
# comparing two uninterrupted runs). Every other file of the run folder must be the same bytes.
TIMED = {"benchmark/latency.json", "export/bundle/README.md", "report/accuracy_vs_latency.png", "report/report.html",
         "report/report.json", "report/report.md"}


def _start(cfg, *extra):
    # A shell's background jobs inherit SIGINT ignored, and so would kdpipe: give it the default
    # disposition a terminal's Ctrl-C meets, whatever launched the tests.
    return subprocess.Popen([sys.executable, "-m", "kdpipe", "all", str(cfg), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _signal_when(proc, path, sig=signal.SIGKILL, timeout=120) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists():
            proc.send_signal(sig)
            proc.wait(30)
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    proc.kill()
    raise AssertionError(f"{path} never appeared")


def _metrics(run_dir):
    report = json.loads((run_dir / "report" / "report.json").read_text())
    return {
        (r["variant"], r["format"]): (r["metric"]["val"], r["metric"]["value"], r["params"]) for r in report["rows"]
    }


def _checksums(run_dir) -> dict[str, str]:
    """sha256 of every file of every stage, as the manifest records them."""
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    return {f: digest for entry in stages.values() for f, digest in entry["files"].items()}


def _assert_same_run(run_dir, reference_dir):
    mine, theirs = _checksums(run_dir), _checksums(reference_dir)
    assert set(mine) == set(theirs)
    differ = {f for f in mine if mine[f] != theirs[f]}
    assert differ <= TIMED, f"not byte-identical to the uninterrupted run: {sorted(differ - TIMED)}"
    assert _metrics(run_dir) == _metrics(reference_dir)


def _stages_done(run_dir):
    path = run_dir / "manifest.json"
    return set(json.loads(path.read_text())["stages"]) if path.exists() else set()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the SLOWER config, and how long it took: what the killed runs must equal."""
    folder = tmp_path_factory.mktemp("reference")
    t0 = time.time()
    proc = _start(write_config(folder, SLOWER))
    assert proc.wait(300) == 0, proc.stderr.read()
    return folder / "run", time.time() - t0


def test_sigkill_anywhere_then_restart_gives_the_uninterrupted_result(reference, tmp_path):
    cfg = write_config(tmp_path, SLOWER)
    run_dir = tmp_path / "run"
    killed_in = []
    for label, stage, marker in KILL_POINTS:
        proc = _start(cfg)
        if _signal_when(proc, run_dir / marker):
            assert stage not in _stages_done(run_dir), f"killed after {stage} had finished"
            killed_in.append(label)
        else:
            assert proc.returncode == 0
            break
    assert killed_in == [k[0] for k in KILL_POINTS]
    proc = _start(cfg)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _assert_same_run(run_dir, reference[0])
    assert not (run_dir / ".checkpoints" / "distill").exists()  # cleared once the stage is recorded


def test_random_kills_then_finish_give_the_uninterrupted_result(reference, tmp_path):
    """kill -9 at random moments (seeded, so a failure can be replayed), several times, then let it
    finish: every metric equals an uninterrupted run's."""
    import random

    run_dir, duration = reference
    cfg = write_config(tmp_path, SLOWER)
    rng = random.Random(1234)
    kills = 0
    for _ in range(5):
        proc = _start(cfg)
        try:
            # within the first 70% of an uninterrupted run's time: a later kill may find a resumed run done
            proc.wait(rng.uniform(0.1, 0.7) * duration)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
            kills += 1
    assert kills >= 1, "every run finished before its kill: nothing was resumed"
    proc = _start(cfg)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    _assert_same_run(tmp_path / "run", run_dir)


def test_ctrl_c_stops_cleanly_and_keeps_the_checkpoint(tmp_path):
    cfg = write_config(tmp_path, SLOWER)
    proc = _start(cfg)
    assert _signal_when(proc, tmp_path / "run" / ".checkpoints" / "distill" / "teacher.pt", signal.SIGINT)
    err = proc.stderr.read()
    assert proc.returncode == 130 and "rerun the same command to continue" in err and "Traceback" not in err
    assert (tmp_path / "run" / ".checkpoints" / "distill" / "teacher.pt").exists()
    proc = _start(cfg)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    cfg = write_config(tmp_path, SLOWER)
    first = _start(cfg)
    try:
        end = time.time() + 60
        while not (tmp_path / "run" / ".staging" / "distill").exists() and time.time() < end:
            time.sleep(0.01)
        second = subprocess.run([sys.executable, "-m", "kdpipe", "distill", str(cfg)], capture_output=True, text=True)
        assert second.returncode == 2
        assert "is in use by another kdpipe process" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from tests.conftest import run_cli

    cfg = write_config(tmp_path, {"student.model": "python:tests.helpers:exploding", "student.params": {"after": 10}})
    assert run_cli("distill", str(cfg), "-q") == 2
    err = capsys.readouterr().err
    assert "baseline: loss became nan at epoch 2, step 4" in err
    assert "the last good checkpoint (epoch 1) is kept" in err
    assert (tmp_path / "run" / ".checkpoints" / "distill" / "baseline.pt").exists()

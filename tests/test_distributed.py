"""Training stages data-parallel under torchrun on the CPU (gloo): same result as one process with the
same global batch and seed, rank 0 alone writes, and a killed 2-process run resumes (on any number
of processes) from its checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import write_config

TWO_PROCS = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "kdpipe"]
ONE_PROC = [sys.executable, "-m", "kdpipe"]
# checkpoints every epoch: a kill at the first lands inside the stage
SLOWER = {"data.limit": 1000, "teacher.train.epochs": 3, "distill.epochs": 3}


def _env(tmp):
    scratch = tmp / "scratch"
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}


def _metrics(run_dir):
    entry = json.loads((run_dir / "manifest.json").read_text())["stages"]["distill"]
    return entry["processes"], {v["variant"]: v["metric"] for v in entry["outputs"]["variants"]}


def _files(run_dir):
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock")


def _kill_tree(pid):
    """SIGKILL a process and all its descendants (torchrun starts workers in their own groups)."""
    children = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    for p in reversed(tree):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _close(a, b, points):
    return all(abs(a[k][s] - b[k][s]) <= points for k in a for s in ("val", "test")) and set(a) == set(b)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    folder = tmp_path_factory.mktemp("single")
    cfg = write_config(folder, SLOWER)
    subprocess.run([*ONE_PROC, "distill", str(cfg), "-q"], check=True, env=_env(folder))
    return folder / "run"


def test_two_processes_match_one_and_only_rank0_writes(single, tmp_path):
    cfg = write_config(tmp_path, SLOWER)
    r = subprocess.run([*TWO_PROCS, "distill", str(cfg), "-q"], capture_output=True, text=True, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    procs, metrics = _metrics(tmp_path / "run")
    assert procs == 2
    assert _close(metrics, _metrics(single)[1], 0.5)
    assert _files(tmp_path / "run") == _files(single)  # the same files, written once
    assert not list((tmp_path / "scratch").glob("kdpipe-rank*"))  # rank 1 wrote only to scratch, now gone
    assert r.stdout.count("distill: results in") == 1  # only rank 0 reports


def test_killed_two_process_run_resumes_on_two_then_one_process(single, tmp_path):
    cfg = write_config(tmp_path, SLOWER)
    run = tmp_path / "run"
    for marker in ("teacher.pt", "student.pt"):
        proc = subprocess.Popen([*TWO_PROCS, "distill", str(cfg), "-q"], env=_env(tmp_path), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 120
        while not (run / ".checkpoints" / "distill" / marker).exists():
            assert proc.poll() is None and time.time() < end, f"{marker} never appeared"
            time.sleep(0.005)
        _kill_tree(proc.pid)  # torchrun and both workers, as a preempted machine would
        proc.wait()
        assert (
            not (run / "manifest.json").exists()
            or "distill" not in json.loads((run / "manifest.json").read_text())["stages"]
        )
    r = subprocess.run([*ONE_PROC, "distill", str(cfg)], capture_output=True, text=True, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[resume] student (KD): continuing after epoch" in r.stderr
    assert _close(_metrics(run)[1], _metrics(single)[1], 2.0)


def test_kdpipe_all_under_torchrun(tmp_path):
    cfg = write_config(tmp_path, {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]})
    r = subprocess.run([*TWO_PROCS, "all", str(cfg), "-q"], capture_output=True, text=True, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {s: e["processes"] for s, e in manifest["stages"].items()} == {
        "distill": 2, "prune": 2, "quantize": 1, "export": 1, "benchmark": 1, "report": 1}
    assert r.stdout.count("kdpipe report: tiny: variants") == 1  # rank 0 alone prints the report

"""A rerun is a transaction: until a stage commits, its previous results stay recorded and valid for
their own config, so a rerun that fails (in any stage) or is refused leaves the run folder as it was."""

import hashlib
import shutil

import pytest

from kdpipe.errors import KdpipeError
from kdpipe.stages import ORDER, STAGES
from tests.conftest import run_cli, write_config

SMALL = {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    assert run_cli("all", str(write_config(folder, SMALL)), "-q") == 0
    return folder / "run"


@pytest.fixture
def run_copy(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run", write_config(tmp_path, SMALL)


def snapshot(run, mtime: bool = False) -> dict:
    """Every file's content and every folder of a run folder (the lock aside); with `mtime`, the run
    folder's own modification time too (which a stage that started, and failed, changes)."""
    out = {"mtime": run.stat().st_mtime_ns} if mtime else {}
    for p in sorted(run.rglob("*")):
        rel = str(p.relative_to(run))
        if rel != ".lock":
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
    return out


def _failing(exc):
    def run(ctx):
        (ctx.out / "half-written.bin").write_bytes(b"x" * 100)  # what a stage leaves before it fails
        raise exc

    return run


@pytest.mark.parametrize("stage", ORDER)
def test_a_stage_that_fails_on_rerun_leaves_the_finished_run_as_it_was(run_copy, monkeypatch, stage):
    run, cfg = run_copy
    before = snapshot(run)
    monkeypatch.setattr(STAGES[stage], "run", _failing(KdpipeError("injected failure")))
    assert run_cli(stage, str(cfg), "--force", "-q") == 2
    assert snapshot(run) == before


def test_a_crash_or_ctrl_c_mid_stage_leaves_it_too(run_copy, monkeypatch):
    run, cfg = run_copy
    before = snapshot(run)
    monkeypatch.setattr(STAGES["prune"], "run", _failing(RuntimeError("a bug")))
    with pytest.raises(RuntimeError):
        run_cli("prune", str(cfg), "--force", "-q")
    monkeypatch.setattr(STAGES["prune"], "run", _failing(KeyboardInterrupt()))
    assert run_cli("prune", str(cfg), "--force", "-q") == 130
    assert snapshot(run) == before


def test_after_a_failed_rerun_with_another_config_the_old_config_is_still_up_to_date(run_copy, monkeypatch, capsys):
    """The user's story: a finished run, a rerun with a changed setting that fails, then the old config
    again: nothing reruns (on main before this, distill's entry was gone and every stage redone)."""
    run, cfg = run_copy
    monkeypatch.setattr(STAGES["distill"], "run", _failing(KdpipeError("injected failure")))
    assert run_cli("all", str(cfg), "--set", "distill.epochs=3", "-q") == 2
    monkeypatch.undo()
    capsys.readouterr()
    assert run_cli("all", str(cfg)) == 0
    err = capsys.readouterr().err
    assert all(f"[{s}] up to date, skipped" in err for s in ORDER), err


def test_a_commit_that_fails_puts_the_previous_folder_back(run_copy, monkeypatch):
    import kdpipe.run.store as artifacts

    run, cfg = run_copy
    before = snapshot(run)

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts, "atomic_write_json", disk_full)  # the manifest write, after the rename
    with pytest.raises(OSError):
        run_cli("report", str(cfg), "--force", "-q")
    assert snapshot(run) == before


def test_leftovers_of_a_killed_process_are_cleaned_or_put_back(run_copy):
    """SIGKILL / SIGTERM run no Python cleanup: the next start removes half-written temporary files and
    staging folders, and puts back a stage folder that a commit had set aside."""
    from kdpipe.run.store import RunStore

    run, cfg = run_copy
    before = snapshot(run)
    (run / ".checkpoints" / "distill").mkdir(parents=True)
    (run / ".checkpoints" / "distill" / ".teacher.pt.k2j3.tmp").write_bytes(b"torn")
    (run / "export" / ".kdpipe.json.x1.tmp").write_bytes(b"torn")
    (run / ".staging" / "prune").mkdir(parents=True)
    (run / ".staging" / "prune" / "pruned.safetensors").write_bytes(b"half")
    (run / "report").rename(run / ".staging" / "report.old")  # killed between the two renames of a commit
    RunStore(run).clean_leftovers()
    after = snapshot(run)
    assert {k for k in after if ".tmp" in k or k.startswith(".staging")} == set()
    assert {k: v for k, v in after.items() if k != ".checkpoints/distill"} == before  # its empty folder stays
    assert run_cli("all", str(cfg), "-q") == 0  # and nothing needs rerunning


def test_a_stage_whose_record_changed_reruns_and_says_why(run_copy, monkeypatch, capsys):
    """A kdpipe whose stage records more than before (its VERSION) reruns that stage on an old run folder,
    and says so (not "input files changed")."""
    run, cfg = run_copy
    monkeypatch.setattr(STAGES["report"], "VERSION", 99, raising=False)
    capsys.readouterr()
    assert run_cli("all", str(cfg)) == 0
    err = capsys.readouterr().err
    assert "[report] running: recorded by an older kdpipe" in err and "[benchmark] up to date" in err

import json
import multiprocessing

import pytest

from kdpipe.errors import RunFolderError
from kdpipe.io import atomic_write_json
from kdpipe.run.store import RunLock, RunStore

pytestmark = pytest.mark.fast  # runs no pipeline


def test_commit_records_checksums_and_detects_changes(tmp_path):
    store = RunStore(tmp_path)
    staging = store.staging_dir("distill")
    (staging / "a.bin").write_bytes(b"abc")
    store.commit("distill", staging, {"outputs": {}})
    assert (tmp_path / "distill" / "a.bin").read_bytes() == b"abc"
    assert not staging.exists()
    assert store.problems("distill") == []
    (tmp_path / "distill" / "a.bin").write_bytes(b"abd")
    assert store.problems("distill") == ["distill/a.bin was changed since it was written"]
    (tmp_path / "distill" / "a.bin").unlink()
    assert store.problems("distill") == ["distill/a.bin is missing"]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"x": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_corrupt_manifest_is_set_aside_and_trusted_for_nothing(tmp_path):
    (tmp_path / "manifest.json").write_text("{trunc")
    assert RunStore(tmp_path).manifest() == {"stages": {}}
    assert (tmp_path / "manifest.json.corrupt").read_text() == "{trunc"


def _hold(path, ready, release):
    with RunLock(path):
        ready.set()
        release.wait(10)


def test_second_process_is_refused_and_a_dead_holder_leaves_no_stale_lock(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    p.start()
    assert ready.wait(10)
    with pytest.raises(RunFolderError, match="in use by another kdpipe process"):
        with RunLock(tmp_path):
            pass
    p.kill()  # SIGKILL: the kernel drops the flock
    p.join()
    with RunLock(tmp_path):
        pass

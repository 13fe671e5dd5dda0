"""Each stage reads only the config it declares (its SECTIONS) or what the stages it requires declare
(a change there reruns them, and through their new run ids this stage). A read of anything else is a
stale result waiting to happen: the stage would be skipped as up to date after that setting changed."""

import dataclasses

import pytest
from pydantic import BaseModel

from kdpipe.stages import ORDER, READ_BY_ANY, STAGES
from tests.conftest import run_cli, write_config


def recording(model: BaseModel, log: set, prefix: str = "") -> BaseModel:
    """A copy of a config (or section) that adds the dotted name of every setting read to `log`."""
    cls, fields = type(model), type(model).model_fields

    class Recording(cls):
        def __getattribute__(self, name):
            value = object.__getattribute__(self, name)
            if name in fields:
                if isinstance(value, BaseModel):
                    return recording(value, log, f"{prefix}{name}.")
                log.add(prefix + name)
            return value

    return Recording.model_construct(**{k: getattr(model, k) for k in fields})


def allowed(stage: str) -> set[str]:
    out, todo = set(READ_BY_ANY), [stage]
    while todo:
        s = todo.pop()
        out |= set(STAGES[s].SECTIONS)
        todo += list(STAGES[s].REQUIRES)
    return out


def undeclared(stage: str, reads: set[str]) -> set[str]:
    ok = allowed(stage)
    return {r for r in reads if not any(r == a or r.startswith(a + ".") for a in ok)}


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    """The settings each stage read in one whole tiny run."""
    out = {name: set() for name in ORDER}
    folder = tmp_path_factory.mktemp("inputs")
    mp = pytest.MonkeyPatch()
    for name in ORDER:
        original = STAGES[name].run

        def spy(ctx, original=original, log=out[name]):
            return original(dataclasses.replace(ctx, cfg=recording(ctx.cfg, log)))

        mp.setattr(STAGES[name], "run", spy)
    try:
        assert run_cli("all", str(write_config(folder, {"benchmark.providers": ["cpu"]})), "-q") == 0
    finally:
        mp.undo()
    return out


@pytest.mark.parametrize("stage", ORDER)
def test_every_setting_a_stage_reads_is_declared(reads, stage):
    assert reads[stage], "the spy saw no reads: it no longer sits between the runner and the stage"
    assert undeclared(stage, reads[stage]) == set()


def test_an_undeclared_read_is_caught(reads):
    """The check itself can fail: export reading benchmark.threads without declaring it (the bug that
    left a stale bundle after --set benchmark.threads=2) is caught."""
    assert undeclared("export", {"benchmark.threads"}) == set()  # declared now
    assert undeclared("report", {"benchmark.threads", "export.max_drop"}) == set()  # upstream-declared
    assert undeclared("distill", {"benchmark.threads", "prune.ratio"}) == {"benchmark.threads", "prune.ratio"}
    assert undeclared("export", {"benchmark.providers"}) == {"benchmark.providers"}


def test_changing_benchmark_threads_reruns_export(tmp_path, capsys):
    cfg = write_config(tmp_path, {"quantize.variants": ["dynamic"], "benchmark.providers": ["cpu"]})
    assert run_cli("all", str(cfg), "-q") == 0
    capsys.readouterr()
    assert run_cli("all", str(cfg), "--set", "benchmark.threads=1") == 0
    err = capsys.readouterr().err
    assert "[export] running: config changed (benchmark.threads)" in err
    assert "[quantize] up to date" in err  # only what reads it

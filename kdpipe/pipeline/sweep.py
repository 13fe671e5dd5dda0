"""`kdpipe sweep CONFIG`: how much size for how much accuracy, and when KD pays.

Every point (a student size from `sweep.students`, a seed, a label fraction) is its own run folder,
`<run>-sweep/points/<point>/`, run by the ordinary runner through distill (which trains the KD
student and the same student without KD), export and benchmark (batch 1, one thread): a killed sweep
continues where it stopped, finished points are skipped, and `--shard I/N` splits the points between
processes or machines that share the folder. One teacher serves every point: trained once into
`<run>-sweep/teacher/` (or the config's given teacher), and every point's split is the same
(data.split_seed), so seeds vary only initialisation and batch order. The last process to finish
writes sweep.json, sweep.md and sweep.html (report/sweep.py).
"""

from __future__ import annotations

import fcntl
import json
import time
from dataclasses import dataclass
from pathlib import Path

from kdpipe.config.schema import Config
from kdpipe.errors import ConfigError
from kdpipe.io import atomic_write_json
from kdpipe.progress import is_quiet, say, set_quiet
from kdpipe.run.store import MANIFEST

STAGES = ["distill", "prune", "quantize", "export", "benchmark"]


@dataclass(frozen=True)
class Point:
    student: str
    seed: int
    fraction: float

    @property
    def name(self) -> str:
        return f"{self.student}-seed{self.seed}" + (f"-labels{self.fraction:g}" if self.fraction < 1 else "")


def sweep_dir(cfg: Config, base: Path | None = None) -> Path:
    run = cfg.run_dir(base)
    return run.with_name(run.name + "-sweep")


def points(cfg: Config) -> list[Point]:
    sc = cfg.sweep
    if not sc.students:
        raise ConfigError("sweep.students: name at least one student size, e.g. sweep: {students: {small: "
                          "{channels: [4, 8]}, large: {channels: [16, 32]}}} (values are student.params)")
    if min(sc.label_fractions) < 1 and cfg.task != "classification":
        raise ConfigError(f"sweep.label_fractions: only for classification (task {cfg.task})")
    return [Point(s, seed, f) for f in sc.label_fractions for s in sc.students for seed in sc.seeds]


def point_config(cfg: Config, point: Point, teacher: dict, root: Path) -> Config:
    """The run a point is: the base config with this student, seed and label fraction, the shared
    teacher and split, and only what the sweep measures (no pruning or quantization; the fp32
    student's batch-1 latency on one thread)."""
    raw = cfg.model_dump(mode="json")
    entry = cfg.sweep.students[point.student]
    student = dict(entry) if {"model", "params"} & set(entry) else {"params": dict(entry)}
    raw["student"] = {**raw["student"], **student}
    raw["teacher"] = {**raw["teacher"], **teacher}
    raw["seed"] = point.seed
    raw["data"] = {**raw["data"], "split_seed": cfg.data_seed, "label_fraction": point.fraction}
    raw["output_dir"] = str(root / "points" / point.name)
    raw["prune"]["enabled"] = False
    raw["quantize"]["enabled"] = False
    raw["export"]["bundle"] = "auto"
    # One thread where benchmark.threads leaves it to the machine (0): shards of a sweep may share a
    # machine, and a point timed on every core would be slowed by the others (and slow them).
    raw["benchmark"].update(providers=["cpu"], batch_sizes=[1], sequence_lengths=None, torch_teacher=False,
                            threads=cfg.benchmark.threads or 1)
    try:
        return Config.model_validate(raw)
    except Exception as e:  # a student entry the schema refuses
        raise ConfigError(f"sweep.students.{point.student}: {e}") from None


def shared_teacher(cfg: Config, root: Path, quiet: bool) -> dict:
    """The teacher section every point uses: the given teacher, or one trained here once (the first
    process to get here trains it; others wait for it)."""
    if cfg.teacher.weights or (cfg.teacher.model.startswith("hf:") and not cfg.teacher.finetune):
        return {}
    folder = root / "teacher"
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "teacher.json"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # shards wait here while one of them trains it
        if not done.exists():
            from kdpipe.tasks import load_data, task_for
            from kdpipe.training.teacher import prepare_teacher

            say("[sweep] training the teacher every point will share")
            task = task_for(cfg)
            data = load_data(cfg)
            model, spec, record = prepare_teacher(cfg, task, data, quiet=quiet)
            saved = task.save(model.cpu(), folder, "teacher", spec, data)
            atomic_write_json(done, {"path": saved.name, "training": record})
    saved = folder / json.loads(done.read_text())["path"]
    given = {"finetune": False, "labels": "kept"}  # trained already: which labels it saw is in its weights
    if saved.is_dir():  # a transformers folder: the points take it as a given model, tokenizer included
        return {"model": f"hf:{saved}", "params": {}, "weights": None, **given}
    return {"weights": str(saved), **given}


def run_sweep(cfg: Config, *, shard: tuple[int, int] = (1, 1), quiet: bool = False,
              base: Path | None = None) -> Path | None:
    """Runs this process's share of the points; returns sweep.md when every point is done, else None."""
    from kdpipe.pipeline import runner
    from kdpipe.report.sweep import write_sweep_report

    root = sweep_dir(cfg, base)
    todo = points(cfg)
    i, n = shard
    mine = [p for k, p in enumerate(todo) if k % n == i - 1]
    for p in mine:  # every point's config is checked before anything trains
        point_config(cfg, p, {}, root)
    teacher = shared_teacher(cfg, root, quiet)
    started, done_here = time.perf_counter(), 0
    for k, p in enumerate(mine, 1):
        pcfg = point_config(cfg, p, teacher, root)
        if _finished(pcfg):
            say(f"[sweep] {k}/{len(mine)} {p.name}: done before, skipped")
            continue
        say(f"[sweep] {k}/{len(mine)} {p.name}: running" + _eta(started, done_here, len(mine) - k + 1))
        was = is_quiet()
        set_quiet(True)  # the sweep's own lines, not every stage's
        try:
            runner.run(pcfg, STAGES, quiet=True, config_hint=f"(sweep point {p.name})")
        finally:
            set_quiet(was)
        done_here += 1
    missing = [p.name for p in todo if not _finished(point_config(cfg, p, teacher, root))]
    if missing:
        say(f"[sweep] {len(todo) - len(missing)}/{len(todo)} points done; {len(missing)} left to other shards "
            f"(e.g. {missing[0]}); the last shard to finish writes the report")
        return None
    return write_sweep_report(cfg, root, [(p, point_config(cfg, p, teacher, root)) for p in todo])


def _finished(pcfg: Config) -> bool:
    """All the point's stages recorded and still current (the runner's own test)."""
    from kdpipe.pipeline.runner import why_stale
    from kdpipe.run.store import RunStore

    store = RunStore(pcfg.run_dir())
    return (store.root / MANIFEST).exists() and all(why_stale(s, pcfg, store) is None for s in STAGES)


def _eta(started: float, done: int, left: int) -> str:
    if not done:
        return ""
    per = (time.perf_counter() - started) / done
    return f" (about {per * left / 60:.1f} min left for this process)"


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return (1, 1)
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. --shard 1/3") from None
    if not 1 <= i <= n:
        raise ConfigError(f"--shard {text!r}: I must be 1..N")
    return (i, n)




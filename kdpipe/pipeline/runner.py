"""Runs stages in order, skipping those whose config, inputs and files are unchanged.

A stage's entry records a fingerprint of the config sections it reads and the run ids of the
upstream entries it consumed. It reruns when either changed, when one of its files is missing or
altered, or with --force; a rerun gives it a new run id, which makes every later stage stale too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from kdpipe import __version__, distributed
from kdpipe.config.recorded import section_dict
from kdpipe.config.schema import Config
from kdpipe.data.registry import local_path
from kdpipe.errors import KdpipeError, RunFolderError
from kdpipe.io import atomic_write_json, sha256_file
from kdpipe.progress import say
from kdpipe.run.context import StageContext
from kdpipe.run.store import MANIFEST, RunLock, RunStore
from kdpipe.stages import ORDER, STAGES
from kdpipe.training.loop import resolve_device


def library_versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "kdpipe": __version__}
    for name in (
        "torch",
        "numpy",
        "onnx",
        "onnxruntime",
        "onnxruntime-gpu",
        "torch-pruning",
        "transformers",
        "optimum",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def fingerprint(stage: str, cfg: Config) -> str:
    sections = STAGES[stage].SECTIONS
    record = {"stage": stage, "config": section_dict(cfg, sections), "files": input_digests(cfg, sections)}
    version = getattr(STAGES[stage], "VERSION", 1)  # raised when what a stage records changes: older entries rerun
    blob = json.dumps({**record, "version": version} if version != 1 else record, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def input_digests(cfg: Config, sections) -> dict:
    """Files a config names, by content: a changed data file or teacher checkpoint reruns distill."""
    out = {}
    if "data" in sections:
        path = local_path(cfg.data.source)
        if path is not None:
            out["data"] = _path_digest(path)
    if "teacher" in sections and cfg.teacher.weights:
        out["teacher.weights"] = _path_digest(Path(cfg.teacher.weights))
    if "teacher" in sections and cfg.teacher.model.startswith("hf:") and Path(cfg.teacher.model[3:]).is_dir():
        out["teacher.model"] = _path_digest(Path(cfg.teacher.model[3:]))  # a teacher folder changed: rerun
    return out


def _path_digest(p: Path) -> str:
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():  # image folders: names, sizes and times, not every byte
        listing = sorted(
            (str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in p.rglob("*") if f.is_file()
        )
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return "missing"


def why_stale(stage: str, cfg: Config, store: RunStore) -> str | None:
    """None when the recorded stage is still valid for this config, else the reason to rerun it."""
    entry = store.entry(stage)
    if entry is None:
        return "not run yet"
    if entry.get("fingerprint") != fingerprint(stage, cfg):
        sections = STAGES[stage].SECTIONS
        changed = _changed_keys(entry.get("config", {}), section_dict(cfg, sections))
        if changed:
            return f"config changed ({', '.join(changed[:4])})"
        files = _changed_keys(entry.get("input_files", {}), input_digests(cfg, sections))
        if files:
            return f"input files changed ({', '.join(files)})"
        return "recorded by an older kdpipe, whose results for this stage lack what it records now (VERSION)"
    for up in STAGES[stage].REQUIRES:
        up_entry = store.entry(up)
        if up_entry is None or entry.get("inputs", {}).get(up) != up_entry.get("run_id"):
            return f"{up} was rerun"
    problems = store.problems(stage)
    if problems:
        return "; ".join(problems[:3])
    return None


def _changed_keys(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def check(cfg: Config, base: Path | None = None) -> list[str]:
    """`kdpipe check`: every pre-flight check, and what `kdpipe all` would then run, without training
    or writing anything in the run folder. Returns what was found, a line each."""
    from kdpipe.config.defaults import family_of

    store = RunStore(cfg.run_dir(base))
    data = preflight(cfg, store.root)
    lines = [
        f"config: task {cfg.task}, model family {family_of(cfg.model_dump(mode='json'))}",
        f"data: {cfg.data.source}: train/validation/test {len(data.train):,}/{len(data.val):,}/{len(data.test):,}"
        + (f", {len(data.labels)} classes" if getattr(data, "labels", None) and cfg.task == "classification" else ""),
        f"teacher {cfg.teacher.model} and student {cfg.student.model}: built, and run on two training samples",
    ]
    plan = [(name, why_stale(name, cfg, store)) for name in ORDER]
    lines.append(f"output: {store.root} (" + ("a new folder" if not store.root.exists() else "an existing run") + ")")
    todo = [f"{n} ({why})" for n, why in plan if why]
    lines.append("kdpipe all would run: " + ", ".join(todo) if todo else "kdpipe all: every stage is up to date")
    return lines


def preflight(cfg: Config, root: Path):
    """Checks that need no run folder, so bad data or models fail before anything is written.
    Returns the task's data."""
    from kdpipe.tasks import load_data, task_for

    check_output_dir(root)
    resolve_device(cfg.device, cfg.precision)
    if cfg.teacher.weights and not Path(cfg.teacher.weights).is_file():
        raise KdpipeError(f"teacher.weights: checkpoint not found: {cfg.teacher.weights}")
    for module in STAGES.values():  # config checks a stage owns (e.g. the bundle names export can make)
        if hasattr(module, "check"):
            module.check(cfg)
    data = load_data(cfg)
    if cfg.data.batch_size > len(data.train):
        say(f"data.batch_size {cfg.data.batch_size:,} is more than the {len(data.train):,} training samples: "
            "every step takes the whole training split")
    task_for(cfg).preflight(cfg, data)
    return data


def check_output_dir(root: Path) -> None:
    """kdpipe replaces stage folders inside the run folder: never do that in a folder it did not make."""
    if root.exists() and not root.is_dir():
        raise RunFolderError(f"output_dir {root} is a file, not a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).exists() and not (root / ".lock").exists():
        raise RunFolderError(
            f"output_dir {root} is not empty and is not a kdpipe run folder; choose an empty or new folder"
        )
    _check_writable(root)


def _check_writable(root: Path) -> None:
    """Write a probe where the run folder is (or would be made), so that an output_dir kdpipe cannot
    write fails now, with nothing written, and not after training (root may bypass permission bits:
    only a real write tells)."""
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunFolderError(f"output_dir {root}: {existing} is a file, so no folder can be made under it")
    before = existing.stat()
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".kdpipe-probe-").cleanup()
        # the probe leaves no trace, not even a new modification time (a refused rerun touches nothing)
        os.utime(existing, ns=(before.st_atime_ns, before.st_mtime_ns))
    except OSError as e:
        raise RunFolderError(f"output_dir {root}: cannot write in {existing} ({e.strerror or e}); "
                             "choose a folder you can write to (output_dir or --set output_dir=PATH)") from None


def run(cfg: Config, stages: list[str], *, force: bool = False, config_hint: str = "CONFIG",
        quiet: bool = False, base: Path | None = None) -> RunStore:
    """Under torchrun, rank 0 decides what runs, holds the lock and writes; the other ranks join the
    training stages (DISTRIBUTED = True) and wait at a barrier after every stage."""
    store = RunStore(cfg.run_dir(base))
    main = distributed.is_main()
    if main:
        check_upstream(cfg, store, stages[0], config_hint)
        preflight(cfg, store.root)
    with RunLock(store.root) if main else contextlib.nullcontext():
        if main:
            store.clean_leftovers()
        for name in stages:
            reason = distributed.broadcast(("--force" if force else why_stale(name, cfg, store)) if main else None)
            if reason is None:
                say(f"[{name}] up to date, skipped (use --force to rerun)")
            elif main or getattr(STAGES[name], "DISTRIBUTED", False):
                say(f"[{name}] running: {reason}")
                _run_stage(name, cfg, store, quiet)
            distributed.barrier()
    return store


def check_upstream(cfg: Config, store: RunStore, stage: str, config_hint: str) -> None:
    """A single stage runs on what earlier stages left: they must be there and current."""
    for up in ORDER[: ORDER.index(stage)]:
        reason = why_stale(up, cfg, store)
        if reason:
            what = "has not run" if reason == "not run yet" else f"is out of date ({reason})"
            raise RunFolderError(
                f"stage {stage!r} needs {up!r}, which {what} in {store.root}: "
                f"run `kdpipe {up} {config_hint}` first (or `kdpipe all {config_hint}`)"
            )


def _run_stage(name: str, cfg: Config, store: RunStore, quiet: bool) -> dict | None:
    module = STAGES[name]
    main = distributed.is_main()
    # The stage's previous entry and folder stay as they are until it commits: a rerun that fails (bad
    # input, a crash, Ctrl-C) leaves the finished results recorded and valid for their own config.
    # Other ranks write into a private scratch folder that is thrown away: rank 0 alone records.
    staging = store.staging_dir(name) if main else Path(tempfile.mkdtemp(prefix=f"kdpipe-rank{distributed.rank()}-"))
    manifest = store.manifest()
    inputs = {up: manifest["stages"][up]["run_id"] for up in module.REQUIRES if up in manifest["stages"]}
    resume_key = fingerprint(name, cfg) + json.dumps(inputs, sort_keys=True)
    ctx = StageContext(cfg=cfg, store=store, out=staging, stage=name, quiet=quiet, resume_key=resume_key)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    try:
        outputs = module.run(ctx)
    except BaseException:
        if main:
            store.discard(staging)
        raise
    finally:
        if not main:
            shutil.rmtree(staging, ignore_errors=True)
    if not main:
        return None
    seconds = time.perf_counter() - t0
    entry = {
        "run_id": uuid.uuid4().hex,
        "fingerprint": fingerprint(name, cfg),
        "inputs": inputs,
        "started": started,
        "seconds": round(seconds, 3),
        "peak_rss_mb": _peak_rss_mb(),
        "seed": cfg.seed,
        "processes": distributed.world() if getattr(module, "DISTRIBUTED", False) else 1,
        "config": section_dict(cfg, module.SECTIONS),
        "input_files": input_digests(cfg, module.SECTIONS),
        "versions": library_versions(),
        "outputs": outputs,
    }
    store.commit(name, staging, entry)
    _write_run_info(store, cfg)
    say(f"[{name}] done in {seconds:.1f} s")
    return entry


def _peak_rss_mb() -> float | None:
    """The process's peak resident memory so far (by the end of the stage), in MiB."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB
    except (ImportError, OSError):
        return None


def _write_run_info(store: RunStore, cfg: Config) -> None:
    manifest = store.manifest()
    manifest.update(
        {"name": cfg.name, "kdpipe_version": __version__, "config": cfg.model_dump(mode="json"),
         "versions": library_versions()}
    )
    atomic_write_json(store.root / "manifest.json", manifest)

"""The run folder: the manifest, checksums and the one-process lock (atomic writes: kdpipe.io).

A stage writes into `<run>/.staging/<stage>/`; only when it has finished is that folder renamed to
`<run>/<stage>/` and its entry (files with sha256, outputs, timings) written to manifest.json, itself
replaced atomically. A stage is "done" only when its manifest entry exists and its files still match.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path

from kdpipe.errors import RunFolderError
from kdpipe.io import atomic_write_json, sha256_file, share_like_plain_writes

MANIFEST = "manifest.json"


class RunLock:
    """flock on <run>/.lock: the kernel drops it when the holder dies, so a killed run never leaves it stuck."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.path.read_text().strip() or "another process"
            raise RunFolderError(
                f"run folder {self.path.parent} is in use by another kdpipe process (pid {holder}); "
                "wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, run_dir: Path):
        self.root = Path(run_dir)

    # manifest ------------------------------------------------------------------------------
    def manifest(self) -> dict:
        path = self.root / MANIFEST
        if not path.exists():
            return {"stages": {}}
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
                raise ValueError("no 'stages' mapping")
        except (OSError, ValueError) as e:
            # Damaged outside kdpipe (its own writes are atomic): keep it for inspection, trust nothing.
            kept = path.with_name(f"{MANIFEST}.corrupt")
            os.replace(path, kept)
            from kdpipe.progress import warn

            warn(f"{path} was unreadable ({e}); moved to {kept.name}, every stage will rerun")
            return {"stages": {}}
        return data

    def entry(self, stage: str) -> dict | None:
        return self.manifest()["stages"].get(stage)

    def problems(self, stage: str) -> list[str]:
        """Why a recorded stage can no longer be trusted (missing or changed files)."""
        entry = self.entry(stage)
        if entry is None:
            return ["not run"]
        out = []
        for rel, digest in entry.get("files", {}).items():
            p = self.root / rel
            if not p.is_file():
                out.append(f"{rel} is missing")
            elif sha256_file(p) != digest:
                out.append(f"{rel} was changed since it was written")
        return out

    # stage folders -------------------------------------------------------------------------
    def staging_dir(self, stage: str) -> Path:
        d = self.root / ".staging" / stage
        if d.exists():
            shutil.rmtree(d)  # leftovers of an interrupted attempt
        d.mkdir(parents=True)
        return d

    def checkpoint_dir(self, stage: str) -> Path:
        return self.root / ".checkpoints" / stage

    def commit(self, stage: str, staging: Path, entry: dict) -> dict:
        """Move a finished stage's folder into place and record it (files + checksums) in the manifest.
        The previous folder is kept aside until the manifest names the new one, and put back if that
        fails: a stage's results are replaced whole or not at all."""
        final, old = self.root / stage, self.root / ".staging" / f"{stage}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        try:
            share_like_plain_writes(staging)
            staging.rename(final)
            files = {str(p.relative_to(self.root)): sha256_file(p) for p in sorted(final.rglob("*")) if p.is_file()}
            entry = dict(entry, files=files)
            manifest = self.manifest()
            manifest["stages"][stage] = entry
            atomic_write_json(self.root / MANIFEST, manifest)
        except BaseException:
            if final.exists() and not staging.exists():
                final.rename(staging)
            if old.exists():
                old.rename(final)
            self.discard(staging)
            raise
        self.discard(old)  # and .staging/ itself, now empty: a finished run folder holds no scratch
        shutil.rmtree(self.checkpoint_dir(stage), ignore_errors=True)  # the stage is done: nothing to resume
        return entry

    def clean_leftovers(self) -> None:
        """What a killed process (SIGKILL, SIGTERM: no Python cleanup runs) may have left: a stage
        folder set aside by a commit that did not finish goes back in place, and staging folders and
        half-written temporary files go. Called under the lock, so no other kdpipe is writing."""
        staging = self.root / ".staging"
        for old in staging.glob("*.old") if staging.is_dir() else []:
            final = self.root / old.name.removesuffix(".old")
            if not final.exists():
                old.rename(final)  # its manifest entry still names these files
        shutil.rmtree(staging, ignore_errors=True)
        for tmp in self.root.rglob(".*.tmp"):  # atomic_write_bytes' and onnx_convert's temporary names
            if tmp.is_file():
                tmp.unlink(missing_ok=True)

    def discard(self, scratch: Path) -> None:
        """A folder under .staging/ that is no longer needed (and .staging/ itself once empty)."""
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            scratch.parent.rmdir()

    def path(self, rel: str) -> Path:
        return self.root / rel

"""Files written whole or not at all, with the permissions a plain write would give, and checksums:
what every layer that writes (stages, tasks, training checkpoints, bundles, the run store) shares."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, plain_mode(0o666))  # mkstemp makes 0600: give what a plain write would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plain_mode(full: int) -> int:
    """The permissions a plain open() or mkdir() would give under this process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return full & ~umask


def share_like_plain_writes(folder: Path) -> None:
    """Libraries that write through private temporary files (safetensors, save_pretrained) leave
    0600 files; a run folder shared with a team or served over HTTP needs them readable like the rest."""
    file_mode, dir_mode = plain_mode(0o666), plain_mode(0o777)
    for p in [folder, *folder.rglob("*")]:
        if p.is_symlink():
            continue
        want = dir_mode if p.is_dir() else file_mode
        if (p.stat().st_mode & 0o777) != want:
            p.chmod(want)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def _json_default(o):
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

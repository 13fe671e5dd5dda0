"""The teacher's outputs over a set of inputs, kept on disk by content so that a rerun, a stage run
alone or another student on the same text does not run the teacher over every text again (the
embedding task's targets: 9 minutes for 167,745 texts on 2 cores).

The key is a hash of the teacher's weights and config, the inputs and FORMAT: a changed teacher or
text misses, never returns stale outputs. Where: $KDPIPE_CACHE, else $XDG_CACHE_HOME/kdpipe, else
~/.cache/kdpipe (teacher-outputs/<key>.npy); KDPIPE_CACHE=off turns it off. A file that cannot be
read or written is recomputed or skipped, never an error: the cache only saves time.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

FORMAT = "1"  # bump when what the cached outputs are computed by changes (pooling, padding cut)


def cache_dir() -> Path | None:
    """The folder of cached teacher outputs, or None when KDPIPE_CACHE turns the cache off."""
    env = os.environ.get("KDPIPE_CACHE")
    if env is not None and env.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    if env:
        root = Path(env).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdpipe"
    return root / "teacher-outputs"


def model_digest(model: torch.nn.Module, config_text: str = "") -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, shapes, bytes) and its config."""
    h = hashlib.sha256(config_text.encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cached(compute: Callable[[np.ndarray], np.ndarray], x: np.ndarray, model_key: str) -> tuple[np.ndarray, bool]:
    """(compute(x), whether it came from the cache)."""
    folder = cache_dir()
    if folder is None:
        return compute(x), False
    h = hashlib.sha256(f"{FORMAT}|{model_key}|{x.dtype}|{x.shape}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    path = folder / f"{h.hexdigest()}.npy"
    try:
        y = np.load(path, allow_pickle=False)
        if len(y) == len(x):
            return y, True
    except (OSError, ValueError, EOFError):
        pass  # not there, or unreadable: compute it
    y = compute(x)
    try:
        from kdpipe.io import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, y, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # a read-only or full disk costs the next run time, not this one its result
    return y, False

"""Progress bars (tqdm on stderr) and status lines; `-q` silences both, not warnings."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def progress(iterable, desc: str, quiet: bool = False, **kw):
    return tqdm(iterable, desc=desc, disable=quiet or _quiet, leave=False, dynamic_ncols=True, **kw)


def say(msg: str) -> None:
    from kdpipe import distributed

    if not _quiet and distributed.is_main():
        print(msg, file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    """Something the user should know even with -q (input that was passed over, a file moved aside)."""
    from kdpipe import distributed

    if distributed.is_main():
        print(f"warning: {msg}", file=sys.stderr, flush=True)

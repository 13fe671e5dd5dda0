"""Progress bars (tqdm on stderr) and status lines; `-q` silences both, not warnings. When stderr is
not a terminal (CI, `> log 2>&1`), a bar would write a carriage-return redraw per update into the log:
there, an epoch loop writes one line per epoch instead, and other loops nothing (their stage says
what it did in its own lines)."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def progress(iterable, desc: str, quiet: bool = False, **kw):
    if not (quiet or _quiet) and not sys.stderr.isatty():
        return LogLines(iterable, desc, kw.get("unit", "it"))
    return tqdm(iterable, desc=desc, disable=quiet or _quiet, leave=False, dynamic_ncols=True, **kw)


class LogLines:
    """progress() for a log: one line per finished epoch ("[desc] epoch 3/30: loss 0.1234, val 97.60% (2.1 s)"),
    with what the loop gave set_postfix; loops over other units pass silently."""

    def __init__(self, iterable, desc: str, unit: str):
        self.items, self.desc, self.unit, self.postfix = iterable, desc, unit, {}

    def set_postfix(self, **kw) -> None:
        self.postfix = kw

    def __iter__(self):
        total = len(self.items) if hasattr(self.items, "__len__") else None
        last = self.items[-1] if total and hasattr(self.items, "__getitem__") else None
        for item in self.items:
            self.postfix, t0 = {}, time.perf_counter()
            yield item
            if self.unit == "epoch":
                done = f"{item}/{last}" if last is not None else f"{item}"
                extra = ", ".join(f"{k} {v}" for k, v in self.postfix.items())
                say(f"[{self.desc}] epoch {done}" + (f": {extra}" if extra else "")
                    + f" ({time.perf_counter() - t0:.1f} s)")


def say(msg: str) -> None:
    from kdpipe import distributed

    if not _quiet and distributed.is_main():
        print(msg, file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    """Something the user should know even with -q (input that was passed over, a file moved aside)."""
    from kdpipe import distributed

    if distributed.is_main():
        print(f"warning: {msg}", file=sys.stderr, flush=True)

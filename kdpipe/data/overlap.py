"""Training texts that overlap held-out ones.

An exact-match filter misses a quotation that is one sentence of a longer held-out text, or the same
line with other capitals and punctuation; training on it would flatter the score on that text. A
training text is dropped when it shares a run of N words with a held-out text (words lowercased,
punctuation ignored), or, when it has fewer than N words, when all of its words occur in that order
in one.
"""

from __future__ import annotations

import re

RUN = 8  # words in a row that make two texts overlap (the text-classification corpus uses the same)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


def _runs(w: tuple[str, ...], n: int):
    return (w[i:i + n] for i in range(len(w) - n + 1))


def drop_overlapping(texts: list[str], held_out, run: int = RUN) -> tuple[list[str], int]:
    """(the texts that share no run of `run` words with any held-out text, how many were dropped)."""
    held = [words(t) for t in held_out]
    # runs of every length up to `run`: a short training text matches when it sits inside a held-out one
    grams = {g for w in held for n in range(1, run + 1) for g in _runs(w, n)}
    kept = []
    for t in texts:
        w = words(t)
        n = min(run, len(w))
        if n and any(g in grams for g in _runs(w, n)):
            continue
        kept.append(t)
    return kept, len(texts) - len(kept)

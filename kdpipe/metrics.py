"""The metrics kdpipe reports: each computed from (numerator, denominator) sums, so that batches,
processes and runtimes add up the same way, and kdpipe.evaluation.evidence can keep every sample's share. Tasks
choose theirs (tasks/); training, evaluation and the report read them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kdpipe.labels import IGNORE


@dataclass(frozen=True)
class Metric:
    """A metric computed from (numerator, denominator) sums, so that batches, processes and
    runtimes all add up the same way before `finish` turns the sums into the value."""

    name: str
    unit: str
    higher_is_better: bool
    partial: Callable[[np.ndarray, np.ndarray], tuple[float, float]]
    finish: Callable[[float, float], float]
    # Per batch, what is kept of the outputs on the test split (the top-1 prediction by default), for
    # agreement with the teacher and for set-level extras (e.g. neighbour overlap of embeddings).
    collect: Callable[[np.ndarray], np.ndarray] = lambda out: out.argmax(-1)
    extras: Callable[[np.ndarray, np.ndarray], dict] | None = None
    # finish(num, den) is num / den: the metric is a mean over samples (accuracy, cosine), so what a
    # variant lost on each sample adds up in the metric's units (kdpipe.evaluation.evidence.versus)
    mean_of_samples: bool = True
    # Each counted unit (a sample, a token) scores 0 or this: the metric is a proportion, and a paired
    # interval gets an exact binomial floor where the bootstrap sees too few changed units (evidence)
    unit_score: float | None = None

    def worse_by(self, reference: float, value: float) -> float:
        """How much worse `value` is than `reference` (positive = worse), in the metric's units."""
        return reference - value if self.higher_is_better else value - reference


def _accuracy_partial(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    real = y != IGNORE
    return float(((logits.argmax(-1) == y) & real).sum() * 100.0), float(real.sum())


def _ratio(num: float, den: float) -> float:
    return num / max(den, 1.0)


ACCURACY = Metric("accuracy", "%", True, _accuracy_partial, _ratio, unit_score=100.0)
MASKED_ACCURACY = Metric("masked-token accuracy", "%", True, _accuracy_partial, _ratio, unit_score=100.0)


def _next_token_nll(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Summed negative log-likelihood of each next token (position t predicts token t+1)."""
    lg, tgt = logits[:, :-1].astype(np.float64), y[:, 1:]
    real = tgt != IGNORE
    m = lg.max(-1, keepdims=True)
    logz = (m + np.log(np.exp(lg - m).sum(-1, keepdims=True)))[..., 0]
    picked = np.take_along_axis(lg, np.where(real, tgt, 0)[..., None], -1)[..., 0]
    return float(((logz - picked) * real).sum()), float(real.sum())


def perplexity(nll_sum: float, tokens: float) -> float:
    """exp of the mean negative log-likelihood per token: the one perplexity formula (report, predict)."""
    return float(math.exp(nll_sum / max(tokens, 1.0)))


PERPLEXITY = Metric("perplexity", "", False, _next_token_nll, perplexity, mean_of_samples=False)


# Sentence embeddings: mean cosine similarity to the teacher's embedding of the same text (x100).
def _cosine_partial(out: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    a = out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    b = target / np.maximum(np.linalg.norm(target, axis=-1, keepdims=True), 1e-12)
    return float((a * b).sum(-1).sum() * 100.0), float(len(a))


def neighbour_overlap(out: np.ndarray, target: np.ndarray, k: int = 10) -> float:
    """Mean share (%) of each text's k nearest neighbours (cosine) under the teacher's embeddings that
    the student's embeddings find too."""
    def top(e):
        e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1)[:, :k]

    k = min(k, len(out) - 1)
    if k < 1:
        return float("nan")
    a, b = top(out), top(target)
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b)]) * 100.0)


COSINE = Metric(
    "cosine similarity to teacher",
    "%",
    True,
    _cosine_partial,
    lambda num, den: num / max(den, 1.0),
    collect=lambda out: out,
    extras=lambda out, y: {"top10_neighbour_overlap": round(neighbour_overlap(out, y), 2)},
)

"""How sure a figure is. A variant's metric on a split is a sum over samples (Metric.partial), so
keeping each sample's share lets every figure carry a 95% interval (bootstrap over samples), and
lets two variants be compared on the *same* samples (a paired interval on their difference), which
sees far smaller differences than two separate intervals do. Agreement with a source model (how many
top-1 answers an int8 copy changed) measures quantization damage even where the changes cancel in
the accuracy of one split.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdpipe.io import atomic_write_bytes
from kdpipe.labels import IGNORE

DRAWS = 1000  # bootstrap resamples: the interval's ends move by ~0.1 of its width between seeds
LEVEL = 95


@dataclass
class Samples:
    """What a model did on one split, per sample: the metric's numerator and denominator (their sums
    give the metric) and what the metric collects of the outputs (the top-1 prediction; an embedding)."""

    num: np.ndarray
    den: np.ndarray
    kept: np.ndarray

    def __len__(self) -> int:
        return len(self.num)


def per_sample(metric, out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metric.partial of each row of a batch on its own (the batch's partial is their sum)."""
    pairs = [metric.partial(out[i:i + 1], y[i:i + 1]) for i in range(len(out))]
    return np.array([p[0] for p in pairs], np.float64), np.array([p[1] for p in pairs], np.float64)


def _draws(n: int, seed: int = 0):
    """The resampled rows, a chunk of draws at a time: the same rows for every variant of a split, so
    paired differences are differences on the same resampled data."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(DRAWS, 2_000_000 // max(n, 1)))
    for start in range(0, DRAWS, chunk):
        yield rng.integers(0, n, size=(min(chunk, DRAWS - start), n))


def _finish(metric, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.array([metric.finish(float(a), float(b)) for a, b in zip(num, den)])


def interval(metric, s: Samples) -> list[float]:
    """The 95% bootstrap interval (percentile) of the metric on these samples."""
    if len(s) < 2:
        v = metric.finish(float(s.num.sum()), float(s.den.sum()))
        return [v, v]
    values = np.concatenate([_finish(metric, s.num[i].sum(1), s.den[i].sum(1)) for i in _draws(len(s))])
    return [round(float(v), 4) for v in np.percentile(values, [(100 - LEVEL) / 2, (100 + LEVEL) / 2])]


def paired_drop(metric, reference: Samples, other: Samples) -> dict:
    """How much worse `other` is than `reference` (positive = worse, metric units) on the same samples:
    the point value and its 95% paired bootstrap interval."""
    if len(reference) != len(other):
        raise ValueError(f"paired comparison of {len(reference)} and {len(other)} samples")
    point = metric.worse_by(metric.finish(float(reference.num.sum()), float(reference.den.sum())),
                            metric.finish(float(other.num.sum()), float(other.den.sum())))
    drops = []
    for i in _draws(len(reference)):
        a = _finish(metric, reference.num[i].sum(1), reference.den[i].sum(1))
        b = _finish(metric, other.num[i].sum(1), other.den[i].sum(1))
        drops.append(a - b if metric.higher_is_better else b - a)
    lo, hi = np.percentile(np.concatenate(drops), [(100 - LEVEL) / 2, (100 + LEVEL) / 2])
    if metric.unit_score:
        lo, hi = _binomial_floor(metric, reference, other, point, lo, hi)
    return {"drop": round(float(point), 4), "ci": [round(float(lo), 4), round(float(hi), 4)]}


def _binomial_floor(metric, reference: Samples, other: Samples, point: float, lo: float, hi: float):
    """Widen a paired interval of a proportion to the exact binomial bounds of the units changed. The
    bootstrap only resamples the changes it saw: with none (an int8 copy that kept every answer on
    validation) its interval is [0, 0], and with a few it is too narrow; yet 0 changes in n units
    leaves up to ~3.7/n of them possibly changed (Clopper-Pearson, 97.5% one-sided)."""
    gain = (reference.num - other.num) if metric.higher_is_better else (other.num - reference.num)
    units = float(reference.den.sum())
    worse = float(np.clip(gain, 0, None).sum()) / metric.unit_score
    better = float(np.clip(-gain, 0, None).sum()) / metric.unit_score
    scale = metric.unit_score / max(units, 1.0)  # one unit's worth, in metric units
    up = _upper_count(worse, units)
    if up is not None:
        hi = max(hi, point + (up - worse) * scale)
    down = _upper_count(better, units)
    if down is not None:
        lo = min(lo, point - (down - better) * scale)
    return lo, hi


def _upper_count(k: float, n: float, alpha: float = (100 - LEVEL) / 200) -> float | None:
    """The one-sided (1 - alpha) Clopper-Pearson upper bound on how many of n units could have changed
    when k were seen to, as a count; None where k is large enough for the bootstrap to hold (> 50)."""
    k, n = int(round(k)), int(round(n))
    if k > 50 or n < 1:
        return None
    if k >= n:
        return float(n)

    def cdf(p: float) -> float:  # P(at most k of n) for a rate p
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                            + i * math.log(p) + (n - i) * math.log1p(-p)) for i in range(k + 1))

    a, b = k / n, 1.0
    for _ in range(60):  # bisection: cdf falls as p grows
        mid = (a + b) / 2
        if mid <= 0 or cdf(mid) > alpha:
            a = mid
        else:
            b = mid
    return b * n


def agreement(a: Samples, b: Samples, mask: np.ndarray | None = None) -> float | None:
    """% of top-1 answers two models share (classes, or tokens where `mask` marks the real ones); for
    outputs that are vectors (embeddings), their mean cosine similarity in %. None if not comparable."""
    if a.kept.shape != b.kept.shape:
        return None
    if a.kept.dtype.kind in "iu":
        same = a.kept == b.kept
        if mask is not None and mask.shape == same.shape:
            same = same[mask]
        return round(float(same.mean() * 100.0), 2) if same.size else None
    x, y = a.kept.reshape(len(a.kept), -1).astype(np.float64), b.kept.reshape(len(b.kept), -1).astype(np.float64)
    cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12)
    return round(float(cos.mean() * 100.0), 2)


def samples_needed(half_width: float, n: int, target: float) -> int:
    """Samples for a paired interval of half-width `target` where n samples gave `half_width` (the
    width shrinks as 1/sqrt(n))."""
    return int(np.ceil(n * (half_width / target) ** 2)) if target > 0 else 0


# --- on disk: one .npz per variant, in <stage>/evidence/ -----------------------------------------------


def save(path: Path, val: Samples, test: Samples) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, val_num=val.num, val_den=val.den, val_kept=val.kept, test_num=test.num,
                        test_den=test.den, test_kept=test.kept)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path) -> dict[str, Samples]:
    with np.load(path, allow_pickle=False) as f:
        return {split: Samples(f[f"{split}_num"], f[f"{split}_den"], f[f"{split}_kept"]) for split in ("val", "test")}


def versus(metric, source: dict, other: dict, splits) -> dict:
    """A variant against the model it was made from (an int8 copy against its fp32 source), on the same
    samples: how many top-1 answers it kept (validation, test), the paired 95% interval of its net loss
    on validation, and its damage there: for a metric that is a mean over samples, the sum of what it
    lost on the samples where it did worse (the answers it broke), which gains on other samples do not
    cancel; for perplexity, the interval's upper end."""
    drop = paired_drop(metric, source["val"], other["val"])
    val, test = (splits.val, splits.test) if splits is not None else (None, None)
    return {"agreement_val": agreement(source["val"], other["val"], answer_mask(val, other["val"])),
            "agreement_test": agreement(source["test"], other["test"], answer_mask(test, other["test"])),
            "drop_val": drop["drop"], "drop_val_ci": drop["ci"],
            "damage_val": damage(metric, source["val"], other["val"], drop)}


def answer_mask(split, s: Samples) -> np.ndarray | None:
    """Language models: the positions whose answers count (the others are padding or unmasked)."""
    y = None if split is None else np.asarray(split.y)
    return y != IGNORE if y is not None and y.shape == s.kept.shape else None


def damage(metric, source: Samples, other: Samples, drop: dict | None = None) -> float:
    """What `other` broke against `source`: for a metric that is a mean over samples, its loss summed
    over the samples where it did worse (accuracy: 100 x the share of answers it broke); else the upper
    end of the paired interval (`drop`, paired_drop's result, when already at hand)."""
    if not metric.mean_of_samples:
        return (drop or paired_drop(metric, source, other))["ci"][1]
    worse = (source.num - other.num) if metric.higher_is_better else (other.num - source.num)
    return round(float(np.clip(worse, 0, None).sum() / max(float(source.den.sum()), 1.0)), 4)

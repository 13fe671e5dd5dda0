"""Where data comes from: each `data.source` scheme (the part before the colon) once, with its loaders
and whether it names a local file or folder (whose content is part of a run's fingerprint). The config
validator, the runner's input digests, `kdpipe init` and the tasks' loaders all read this table, so a
new source is one entry here and its loader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kdpipe.data import sources, text
from kdpipe.errors import DataError


@dataclass(frozen=True)
class Scheme:
    usage: str  # how a source of this scheme is written, e.g. csv:PATH
    local: bool  # the rest is a local file or folder
    arrays: Callable | None = None  # (rest, data config) -> RawData: image and feature classification
    texts: Callable | None = None  # (scheme, rest, text_column, label_column) -> (texts, labels or None)


SCHEMES: dict[str, Scheme] = {
    "builtin": Scheme("builtin:NAME", False, arrays=sources.builtin_arrays,
                      texts=lambda _, name, col, label, drop=False: text.builtin_texts(name, col, label)),
    "npz": Scheme("npz:PATH", True, arrays=sources.npz_arrays),
    "csv": Scheme("csv:PATH", True, arrays=sources.csv_arrays, texts=text.file_texts),
    "folder": Scheme("folder:PATH", True, arrays=sources.folder_arrays),
    "text": Scheme("text:PATH", True, texts=text.file_texts),
    "jsonl": Scheme("jsonl:PATH", True, texts=text.file_texts),
    "hf-disk": Scheme("hf-disk:PATH", True, texts=text.hf_dataset_texts),
    "hf-hub": Scheme("hf-hub:NAME", False, texts=text.hf_dataset_texts),
}
# what each built-in data set holds (kdpipe init reads it to choose the task)
BUILTIN_KINDS = {**{n: "images" for n in sources.BUILTIN_ARRAYS},
                 **{n: "labelled texts" if labelled else "texts" for n, labelled in text.BUILTIN_TEXTS.items()}}


def parse(source: str, wants: str | None = None, where: str = "data.source") -> tuple[str, Scheme, str]:
    """(scheme name, its entry, the rest) of a source, or one DataError naming the schemes that give
    `wants` ("arrays" or "texts"; None: any)."""
    name, _, rest = str(source).partition(":")
    scheme = SCHEMES.get(name)
    fits = [n for n, s in SCHEMES.items() if wants is None or getattr(s, wants)]
    if scheme is None or not rest or name not in fits:
        raise DataError(
            f"{where} {source!r}: expected "
            + ", ".join(SCHEMES[n].usage for n in fits)
            + ("" if wants is None else f" (the sources of {'text' if wants == 'texts' else 'array'} data)")
        )
    return name, scheme, rest


def local_path(source: str) -> Path | None:
    """The file or folder a source names, where it names one here."""
    name, _, rest = str(source).partition(":")
    scheme = SCHEMES.get(name)
    return Path(rest) if scheme is not None and scheme.local and rest else None


def load_arrays(cfg) -> sources.RawData:
    """Image or feature data for classification. cfg: the `data` config section."""
    _, scheme, rest = parse(cfg.source, "arrays")
    data = scheme.arrays(rest, cfg)
    data.source = cfg.source
    sources.check_arrays(data, where=f"data.source {cfg.source!r}", labels=cfg.labels)
    return data


def load_labelled_texts(source: str, text_column: str = "text", label_column: str | None = None,
                        drop_unlabelled: bool = False) -> tuple[list[str], list[str] | None]:
    """Texts, and their labels (as strings) when `label_column` is given; rows without a label refused,
    or with `drop_unlabelled` left out."""
    name, scheme, rest = parse(source, "texts")
    return scheme.texts(name, rest, text_column, label_column, drop_unlabelled)


def load_texts(source: str, text_column: str = "text") -> list[str]:
    return load_labelled_texts(source, text_column)[0]

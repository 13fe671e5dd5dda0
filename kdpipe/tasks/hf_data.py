"""The text data of the transformers tasks: the splits and tokenizer (TextData), encoding padded
texts, and the texts from other sources (data.extra_texts for KD, data.other_source as a second test
set), kept apart from what is held out."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdpipe.data.overlap import RUN, drop_overlapping
from kdpipe.data.registry import load_labelled_texts, load_texts
from kdpipe.data.splits import Split
from kdpipe.errors import DataError
from kdpipe.progress import say


@dataclass
class TextData:
    train: Split
    val: Split
    test: Split
    tokenizer: object
    sequence_length: int
    sha256: str
    labels: list[str] | None = None  # classification only
    other: Split | None = None  # data.other_source: a second test set from another source
    max_length: int | None = None  # the longest input the bundle takes, when more than sequence_length

    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.labels else len(self.tokenizer)


def encode(tokenizer, texts: list[str], length: int, pad_to_longest: bool = False) -> np.ndarray:
    """Padded texts as the models and apps take them: ids and attention mask stacked, [n, 2, length]
    (or as long as the longest text, up to `length`)."""
    enc = tokenizer(texts, truncation=True, max_length=length, padding="longest" if pad_to_longest else "max_length",
                    return_tensors="np")
    return np.stack([enc["input_ids"], enc["attention_mask"]], axis=1).astype(np.int64)


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def extra_texts(cfg, held_out: set[str]) -> list[str]:
    """data.extra_texts (one source or several), without any text that overlaps one held out
    (validation, test, other source: kdpipe.data.overlap), sampled down to data.extra_texts_max (and
    data.limit, for quick runs)."""
    dc = cfg.data
    if not dc.extra_texts:
        return []
    sources = [dc.extra_texts] if isinstance(dc.extra_texts, str) else dc.extra_texts
    loaded = dict.fromkeys(t for source in sources for t in load_texts(source, dc.text_column))
    texts, dropped = drop_overlapping(list(loaded), held_out)
    if dropped:
        say(f"data.extra_texts: {dropped} of {len(loaded)} texts left out: they share {RUN} words in a row "
            "with (or lie inside) a validation, test or other-source text")
    most = min(n for n in (dc.limit, dc.extra_texts_max, len(texts)) if n is not None)
    if most < len(texts):
        rng = np.random.default_rng(cfg.data_seed + 13)
        texts = [texts[i] for i in np.sort(rng.permutation(len(texts))[:most])]
    return texts


def teacher_max_length(cfg, tokenizer, teacher) -> int:
    """The longest input the teacher takes: a sentence-transformers folder's max_seq_length, else the
    tokenizer's model_max_length, within the model's position embeddings (a drop-in student takes
    as much; it shares the teacher's position embeddings)."""
    limit = None
    if cfg.teacher.model.startswith("hf:"):
        st = Path(cfg.teacher.model[3:]) / "sentence_bert_config.json"
        if st.is_file():
            limit = json.loads(st.read_text()).get("max_seq_length")
    limit = limit or (tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None)
    positions = getattr(teacher.hf.config, "max_position_embeddings", None)
    limit = min(x for x in (limit, positions) if x) if (limit or positions) else cfg.data.sequence_length
    return max(int(limit), cfg.data.sequence_length)


OTHER_MAX = 1000  # texts of data.other_source scored: a sample with the data seed is enough for a mean


def other_texts(cfg, seen: set[str], label_column: str | None = None) -> tuple[list[str], list[str] | None]:
    """data.other_source: texts (and labels) from another source, without any the models trained on;
    at most OTHER_MAX (or data.limit) of them, sampled with the data seed."""
    dc = cfg.data
    texts, labels = load_labelled_texts(dc.other_source, dc.text_column, label_column)
    keep = [i for i, t in enumerate(texts) if t not in seen]
    most = min(OTHER_MAX, dc.limit or OTHER_MAX)
    if most < len(keep):
        keep = sorted(np.random.default_rng(cfg.data_seed + 17).permutation(keep)[:most].tolist())
    if len(keep) < 2:
        raise DataError(f"data.other_source {dc.other_source}: {len(keep)} texts the models did not train on; "
                        "need at least 2")
    return [texts[i] for i in keep], (None if labels is None else [labels[i] for i in keep])


def other_and_extra_texts(cfg, texts: list[str], train_idx, held_idx, label_column: str | None = None):
    """(other-source texts, their labels, extra texts): data.other_source without any training text,
    and data.extra_texts without any text that is held out (validation, test, other source)."""
    o_texts, o_labels = (other_texts(cfg, {texts[i] for i in train_idx}, label_column) if cfg.data.other_source
                         else ([], None))
    return o_texts, o_labels, extra_texts(cfg, {texts[i] for i in held_idx} | set(o_texts))

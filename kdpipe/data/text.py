"""Text for language-model distillation: sources, a tokenizer trained locally, packing and masking.

Sources: `builtin:pydoc-topics` (the Python documentation text that ships with CPython, in
pydoc_data.topics; `builtin:pydoc-paragraphs` and `builtin:pydoc-sentences` cut it into paragraphs or
sentences, and `builtin:pydoc-sections` labels each paragraph with the part of the language reference
it comes from; `builtin:stdlib-sentences`, the sentences of the standard library's docstrings), `text:PATH` (a .txt
file, or a folder of them), `jsonl:PATH` and `csv:PATH` with named text (and label) columns, and
Hugging Face datasets: `hf-disk:PATH` (datasets.save_to_disk output) or `hf-hub:NAME` (where a
network is). Tokenizers are trained here with the `tokenizers` library (byte-level
BPE for causal LMs, BERT-style for encoders) and wrapped as transformers fast tokenizers, so they
save next to the model and load with AutoTokenizer.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from kdpipe.errors import DataError
from kdpipe.labels import IGNORE

# builtin:pydoc-sections: each pydoc topic belongs to one part of the language reference.
PYDOC_SECTIONS = {
    "statements": "assert assignment async augassign break class compound continue del else for function global if "
                  "import nonlocal pass raise return try while with yield",
    "expressions": "atom-identifiers atom-literals attribute-references await binary bitwise booleans calls "
                   "comparisons conversions exprlists floating formatstrings identifiers imaginary in integers "
                   "lambda operator-summary power shifting slicings strings subscriptions unary",
    "data-model": "attribute-access callable-types context-managers customization dynamic-features exceptions "
                  "execmodel id-classes naming numeric-types objects sequence-types specialattrs specialnames types",
    "built-in-types": "bltin-code-objects bltin-ellipsis-object bltin-null-object bltin-type-objects debugger dict "
                      "lists numbers string-methods truth typesfunctions typesmapping typesmethods typesmodules "
                      "typesseq typesseq-mutable",
}


def pydoc_paragraphs(min_words: int = 12) -> list[tuple[str, str]]:
    """(paragraph, topic) pairs of the Python documentation that ships with CPython."""
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    return [(" ".join(par.split()), key) for key in sorted(topics)
            for par in re.split(r"\n\s*\n", topics[key]) if len(par.split()) >= min_words]


SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# Parts of the standard library whose docstrings are tests, demos or vendored code, not prose.
STDLIB_SKIP = {"test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "site-packages", "dist-packages",
               "ensurepip", "pydoc_data", "__pycache__", "distutils"}


@lru_cache(maxsize=1)
def stdlib_sentences(min_words: int = 6) -> tuple[str, ...]:
    """Sentences of the docstrings of CPython's own standard library (modules, classes, functions),
    read with `ast` from the .py files that ship with every Python: about 13,000 sentences (1.2 MB)
    on 3.11, five times pydoc-sentences, from other documents (API docstrings, not the language
    reference). Doctest lines and signatures are left out."""
    import ast
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for f in sorted(root.rglob("*.py")):
        if set(f.relative_to(root).parts) & STDLIB_SKIP:
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        docs += [d for node in ast.walk(tree)
                 if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                 and (d := ast.get_docstring(node))]
    sentences = (s for d in docs for p in re.split(r"\n\s*\n", d) for s in SENTENCE.split(" ".join(p.split())))
    return tuple(s for s in sentences if len(s.split()) >= min_words and not re.search(r">>>|\)\s*->|^[-=*]{3}", s))


# builtin text sets: name -> labelled (builtin:pydoc-sections labels each paragraph with its part)
BUILTIN_TEXTS = {"pydoc-topics": False, "pydoc-paragraphs": False, "pydoc-sentences": False,
                 "stdlib-sentences": False, "pydoc-sections": True}


def builtin_texts(name: str, text_column: str, label_column: str | None,
                  drop_unlabelled: bool = False) -> tuple[list[str], list[str] | None]:
    """A text set that ships with CPython (BUILTIN_TEXTS); every text has its label."""
    if name == "pydoc-topics":
        import pydoc_data.topics

        texts, labels = [pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics)], None
    elif name == "pydoc-sentences":  # short texts, as sentence embedders mostly see
        texts, labels = [s for p, _ in pydoc_paragraphs(6) for s in SENTENCE.split(p) if len(s.split()) >= 6], None
    elif name == "stdlib-sentences":
        texts, labels = list(stdlib_sentences()), None
    elif name in ("pydoc-paragraphs", "pydoc-sections"):
        section = {t: s for s, topics in PYDOC_SECTIONS.items() for t in topics.split()}
        pairs = [(p, section[t]) for p, t in pydoc_paragraphs() if t in section]
        texts, labels = [p for p, _ in pairs], ([s for _, s in pairs] if name == "pydoc-sections" else None)
    else:
        raise DataError(f"data.source builtin:{name}: unknown; text sources are "
                        f"{', '.join('builtin:' + n for n in BUILTIN_TEXTS)}")
    if label_column is not None and labels is None:
        raise DataError(f"data.source builtin:{name}: has no labels; builtin:pydoc-sections has")
    return texts, labels if label_column is not None else None


def hf_dataset_texts(scheme: str, name: str, text_column: str, label_column: str | None,
                     drop_unlabelled: bool = False):
    """Rows of a Hugging Face dataset (every split, concatenated: kdpipe splits by its own seed)."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"data.source {scheme}:{name}: needs the datasets package (pip install 'kdpipe[datasets]')") \
            from None
    try:
        ds = datasets.load_from_disk(name) if scheme == "hf-disk" else datasets.load_dataset(name)
    except Exception as e:  # FileNotFoundError, ConnectionError, ValueError ... all mean "cannot read it"
        raise DataError(f"data.source {scheme}:{name}: cannot load ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]})") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets([ds[k] for k in sorted(ds)])
    for col in (text_column, label_column):
        if col is not None and col not in ds.column_names:
            raise DataError(f"data.source {scheme}:{name}: no column {col!r} (columns: {', '.join(ds.column_names)})")
    texts = [str(t) for t in ds[text_column]]
    if label_column is None:
        return texts, None
    feature = ds.features[label_column]
    names = getattr(feature, "names", None)  # a ClassLabel: ints with names
    labels = [names[v] if names else str(v) for v in ds[label_column]]
    return texts, labels


def file_texts(
    scheme: str, rest: str, text_column: str, label_column: str | None, drop_unlabelled: bool = False
) -> tuple[list[str], list[str] | None]:
    """Texts, and their labels (as strings) when `label_column` is given, of a text:, jsonl: or csv: file.
    Empty texts are skipped with a note; rows without a label are refused, or left out with a note."""
    from kdpipe.data.quality import label_name, missing, unlabelled
    from kdpipe.progress import warn

    source = f"{scheme}:{rest}"
    path = Path(rest)
    if not path.exists():
        raise DataError(f"data.source: {path} not found")
    if scheme == "text":
        if label_column is not None:
            raise DataError(f"data.source {source}: plain text has no labels; use jsonl:, csv: or hf-disk:")
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        rows = [(i, {"t": f.read_text(encoding="utf-8", errors="replace")}) for i, f in enumerate(files, 1)]
        text_column = "t"
    elif scheme == "jsonl":
        rows = read_jsonl(path, text_column, label_column, hint=True, numbered=True)
    else:
        import pandas as pd

        try:
            df = pd.read_csv(path)
        except Exception as e:
            raise DataError(f"{path}: not a readable CSV file ({e})") from None
        for col, key in ((text_column, "text_column"), (label_column, "label_column")):
            if col is not None and col not in df.columns:
                raise DataError(f"{path}: no column {col!r} (columns: {', '.join(map(str, df.columns))}; "
                                f"set data.{key})")
        rows = list(enumerate(df.to_dict("records"), 2))  # line 1 is the header
    if label_column is not None:
        note = unlabelled(str(path), [i for i, r in rows if missing(r.get(label_column))], len(rows), label_column,
                          drop_unlabelled)
        if note:
            warn(note)
            rows = [(i, r) for i, r in rows if not missing(r.get(label_column))]
    kept = [r for _, r in rows if not missing(r[text_column])]
    if len(kept) < len(rows):
        warn(f"{path}: {len(rows) - len(kept):,} empty text{'s' if len(rows) - len(kept) > 1 else ''}: skipped")
    if not kept:
        raise DataError(f"{path}: no text found")
    texts = [str(r[text_column]) for r in kept]
    return texts, ([label_name(r[label_column]) for r in kept] if label_column is not None else None)


def read_jsonl(path: Path, text_column: str, label_column: str | None = None, hint: bool = False,
               numbered: bool = False) -> list:
    """The rows of a JSONL file, each with a string `text_column` (and a `label_column` when given, or
    with `numbered` rows whose label is missing left to the caller, as (line, row) pairs); `hint`
    names the config keys in the errors."""
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
            raise DataError(
                f"{path}:{i}: no string field {text_column!r}" + (" (set data.text_column)" if hint else "")
            )
        if label_column is not None and row.get(label_column) is None and not numbered:
            raise DataError(f"{path}:{i}: no field {label_column!r}" + (" (set data.label_column)" if hint else ""))
        rows.append((i, row) if numbered else row)
    return rows


def train_tokenizer(texts: list[str], kind: str, vocab_size: int):
    """A fast tokenizer trained on `texts`, the same on every run: kind "causal" (byte-level BPE,
    <|endoftext|> as BOS/EOS/PAD) or "masked" (BERT-style, with [CLS] [SEP] [MASK] [PAD] [UNK])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "causal":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        special = ["<|endoftext|>"]
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=special[0], eos_token=special[0],
                                       pad_token=special[0])
    if kind == "masked":
        # BERT's normalisation, pre-tokenisation and special tokens over a BPE vocabulary: tokenizers'
        # WordPieceTrainer assigns its "##" tokens in hash-map order, so two trainings on the same
        # text give different vocabularies (huggingface/tokenizers#1794); BPE without a subword
        # prefix is reproducible, and the encoder does not care how pieces are marked.
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special))
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]")
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def pack(texts: list[str], tokenizer, block: int, separator_id: int | None) -> np.ndarray:
    """Concatenate the token ids of all texts (separated by `separator_id`) and cut them into
    blocks of `block` tokens; the tail shorter than a block is dropped. Every position is real text."""
    ids: list[int] = []
    for t in texts:
        ids += tokenizer(t, add_special_tokens=False)["input_ids"]
        if separator_id is not None:
            ids.append(separator_id)
    n = len(ids) // block
    if n == 0:
        raise DataError(f"the text has {len(ids)} tokens, fewer than one block of {block}; lower data.sequence_length")
    return np.asarray(ids[: n * block], dtype=np.int64).reshape(n, block)


def mask_tokens(ids: np.ndarray, tokenizer, prob: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """BERT-style masking: `prob` of the non-special positions become targets; of those 80% are
    replaced by [MASK], 10% by a random token, 10% kept. Returns (inputs, labels with -100 elsewhere)."""
    special = np.isin(ids, tokenizer.all_special_ids)
    chosen = (rng.random(ids.shape) < prob) & ~special
    labels = np.where(chosen, ids, IGNORE)
    inputs = ids.copy()
    roll = rng.random(ids.shape)
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    random_pos = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[random_pos] = rng.integers(len(tokenizer.all_special_ids), len(tokenizer), random_pos.sum())
    return inputs, labels

"""Text for language-model distillation: sources, a tokenizer trained locally, packing and masking.

Sources: `builtin:pydoc-topics` (the Python documentation text that ships with CPython, in
pydoc_data.topics), `text:PATH` (a .txt file, or a folder of them), `jsonl:PATH` and `csv:PATH`
with a named text column. Tokenizers are trained here with the `tokenizers` library (byte-level
BPE for causal LMs, WordPiece for masked LMs) and wrapped as transformers fast tokenizers, so they
save next to the model and load with AutoTokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kdpipe.errors import DataError
from kdpipe.training.lm_losses import IGNORE


def load_texts(source: str, text_column: str = "text") -> list[str]:
    scheme, _, rest = source.partition(":")
    if scheme == "builtin" and rest == "pydoc-topics":
        import pydoc_data.topics

        return [pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics)]
    if scheme in ("text", "jsonl", "csv"):
        path = Path(rest)
        if not path.exists():
            raise DataError(f"data.source: {path} not found")
        if scheme == "text":
            files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
            texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
        elif scheme == "jsonl":
            texts = []
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get(text_column), str):
                    raise DataError(f"{path}:{i}: no string field {text_column!r} (set data.text_column)")
                texts.append(row[text_column])
        else:
            import pandas as pd

            try:
                df = pd.read_csv(path)
            except Exception as e:
                raise DataError(f"{path}: not a readable CSV file ({e})") from None
            if text_column not in df.columns:
                raise DataError(f"{path}: no text column {text_column!r} (columns: {', '.join(map(str, df.columns))})")
            texts = df[text_column].astype(str).tolist()
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise DataError(f"{path}: no text found")
        return texts
    raise DataError(f"data.source {source!r}: expected builtin:pydoc-topics, text:PATH, jsonl:PATH or csv:PATH")


def train_tokenizer(texts: list[str], kind: str, vocab_size: int):
    """A fast tokenizer trained on `texts`: kind "causal" (byte-level BPE, <|endoftext|> as BOS/EOS/PAD)
    or "masked" (WordPiece with [CLS] [SEP] [MASK] [PAD] [UNK])."""
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
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
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

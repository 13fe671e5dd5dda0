"""A text bundle's tokenizer with Hugging Face's `tokenizers` alone (no transformers, no torch), as an
app would load it: `kdpipe predict` on a text bundle answers in well under a second that way, where
importing transformers took 7-11 s. It gives the ids transformers' fast tokenizer gives for the same
folder (that tokenizer is this tokenizer.json plus the special tokens of special_tokens_map.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kdpipe.errors import KdpipeError


class BundleTokenizer:
    def __init__(self, folder: Path, info: dict):
        from tokenizers import Tokenizer

        folder = Path(folder)
        path = folder / info.get("tokenizer", "tokenizer.json")
        try:
            self.tok = Tokenizer.from_file(str(path))
        except Exception as e:  # a file that is not a tokenizers JSON
            raise KdpipeError(f"{path}: not a readable tokenizer file ({' '.join(str(e).split())[:160]})") from None
        self.tok.no_padding()  # the file may carry the training's fixed padding; batches are padded here
        self.tok.no_truncation()
        self.max_len = int(info["max_sequence_length"])
        special = _special_tokens(folder)
        self.pad_id = self._id(special.get("pad_token"), 0)
        self.mask_token_id = self._id(special.get("mask_token"), None)
        self.eos_token_id = self._id(special.get("eos_token"), None)
        config = folder / "tokenizer_config.json"
        self.clean_up = bool(config.is_file() and json.loads(config.read_text()).get("clean_up_tokenization_spaces"))

    def _id(self, token: str | None, default):
        got = self.tok.token_to_id(token) if token else None
        return default if got is None else got

    def ids(self, text: str, special: bool = True, truncate: bool = True) -> list[int]:
        """One text's ids: with `truncate`, cut to the bundle's maximum length keeping the special tokens
        (as transformers' truncation=True does); else the first max_length ids (language models)."""
        if not truncate:
            return self.tok.encode(text, add_special_tokens=special).ids[: self.max_len]
        self.tok.enable_truncation(self.max_len)
        try:
            return self.tok.encode(text, add_special_tokens=special).ids
        finally:
            self.tok.no_truncation()

    def batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        """input_ids and attention_mask, padded on the right to the batch's longest text."""
        rows = [self.ids(t) for t in texts]
        width = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_id, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = r, 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def decode(self, ids: list[int], skip_special: bool = False) -> str:
        text = self.tok.decode(list(ids), skip_special_tokens=skip_special)
        return _clean_up(text) if self.clean_up else text


def _special_tokens(folder: Path) -> dict[str, str]:
    path = folder / "special_tokens_map.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    return {k: (v.get("content") if isinstance(v, dict) else v) for k, v in raw.items() if isinstance(v, (str, dict))}


def _clean_up(text: str) -> str:
    """transformers' clean_up_tokenization (spaces before punctuation and English contractions)."""
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                 (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text

"""Text generation from a causal-LM bundle in plain onnxruntime: the prompt in one call with an empty
past, then one token a call with the keys and values the model returned (its KV cache), greedy or
sampled (temperature, top-k, top-p). Bundles exported before the cache (no past inputs) rerun the
whole prefix each token; `use_cache=False` does that on purpose (what the benchmark compares)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from kdpipe.errors import DataError, ModelError
from kdpipe.runtime.sessions import input_names

PAST_PREFIX, PRESENT_PREFIX = "past_key_values.", "present."


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 20
    temperature: float = 0.0  # 0: greedy, the most likely token each step
    top_k: int = 0  # sample from the k most likely tokens (0: all)
    top_p: float = 1.0  # ... and from the fewest whose probabilities reach top_p
    seed: int | None = None


class Generator:
    def __init__(self, session, max_positions: int | None = None):
        self.session = session
        self.names = input_names(session)
        self.past = [n for n in self.names if n.startswith(PAST_PREFIX)]
        self.outputs = [o.name for o in session.get_outputs()]
        self.cached = bool(self.past)
        self.max_positions = max_positions

    def run(self, ids: np.ndarray, past: dict | None = None) -> tuple[np.ndarray, dict]:
        """(logits [batch, new, vocab], the present keys and values as the next call's past) for new
        tokens `ids` after `past` (None: none)."""
        got = dict(zip(self.outputs, self.session.run(None, text_feeds(self.names, ids, past=past))))
        present = {PAST_PREFIX + k[len(PRESENT_PREFIX):]: v for k, v in got.items() if k.startswith(PRESENT_PREFIX)}
        return got[self.outputs[0]], present

    def generate(self, prompt: list[int], sampling: Sampling, eos_id: int | None = None,
                 use_cache: bool = True) -> Iterator[int]:
        """New token ids, one at a time (stops at eos_id, after max_new_tokens, or at the model's
        longest sequence)."""
        if not prompt:
            raise DataError("generate: an empty prompt (give at least one token of text)")
        cached = use_cache and self.cached
        limit = self.max_positions or len(prompt) + sampling.max_new_tokens
        ids = list(prompt[-limit:])
        rng = np.random.default_rng(sampling.seed)
        logits, past = self.run(np.asarray([ids], np.int64))
        for _ in range(sampling.max_new_tokens):
            token = pick(logits[0, -1], sampling, rng)
            yield token
            ids.append(token)
            if token == eos_id or len(ids) >= limit:
                return
            if cached:
                logits, past = self.run(np.asarray([[token]], np.int64), past)
            else:
                logits, _ = self.run(np.asarray([ids], np.int64))


def text_feeds(names: list, ids: np.ndarray, mask: np.ndarray | None = None, past: dict | None = None) -> dict:
    """What a transformers graph takes, by its input names (runtime.sessions.input_names, which carry
    their shapes), for token ids [batch, new] after `past` (a KV-cache graph's keys and values; None:
    an empty past, [batch, heads, 0, head size]): the attention mask (`mask` over the new tokens, ones
    by default, and ones over the past), token types and positions."""
    b, n = ids.shape
    done = 0 if not past else next(iter(past.values())).shape[2]
    new = np.ones((b, n), np.int64) if mask is None else mask
    fill = {
        "input_ids": lambda: ids,
        "attention_mask": lambda: np.concatenate([np.ones((b, done), new.dtype), new], 1) if done else new,
        "token_type_ids": lambda: np.zeros_like(ids),
        "position_ids": lambda: np.broadcast_to(np.arange(done, done + n, dtype=np.int64), (b, n)).copy(),
    }
    for name in names:
        if not name.startswith(PAST_PREFIX):
            continue
        shape = getattr(name, "shape", ())
        if past:
            fill[name] = lambda v=past[name]: v
        elif len(shape) == 4 and isinstance(shape[1], int) and isinstance(shape[3], int):
            fill[name] = lambda s=shape: np.zeros((b, s[1], 0, s[3]), np.float32)
        else:
            raise ModelError(f"the ONNX model's input {name} has shape {shape or 'unknown'}; kdpipe fills an empty "
                             "past of [batch, heads, 0, head size] (runtime.sessions.input_names gives it)")
    missing = [name for name in names if name not in fill]
    if missing:
        raise ModelError(f"the ONNX model asks for inputs kdpipe cannot fill: {', '.join(missing)}")
    return {name: fill[name]() for name in names}


def pick(logits: np.ndarray, s: Sampling, rng: np.random.Generator) -> int:
    """The next token: the arg-max when temperature is 0, else a draw from the tempered distribution
    cut to the top_k most likely and to the fewest whose probability reaches top_p."""
    if s.temperature <= 0:
        return int(logits.argmax())
    z = logits.astype(np.float64) / s.temperature
    order = np.argsort(-z, kind="stable")
    if s.top_k:
        order = order[: s.top_k]
    p = np.exp(z[order] - z[order].max())
    p /= p.sum()
    if s.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(p), s.top_p) + 1)
        order, p = order[:keep], p[:keep] / p[:keep].sum()
    return int(order[rng.choice(len(order), p=p)])

"""What `kdpipe predict` says for each input, by the bundle's task (kdpipe.json `task`): a record per
input (what --json prints) and its one-line text form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kdpipe.bundle.folder import class_scores, text_outputs, top_classes
from kdpipe.bundle.generate import Generator, Sampling
from kdpipe.bundle.tokenizer import BundleTokenizer
from kdpipe.metrics import PERPLEXITY

LM_TASKS = ("causal-lm", "masked-lm")


def takes_text(info: dict) -> bool:
    return "tokenizer" in info or info.get("task", "classification") != "classification"


def records(folder: Path, session, info: dict, data, top_k: int, sampling: Sampling | None = None) -> list[dict]:
    """One record per input: label, probability, top (the k most likely) and logits (classifiers),
    embedding (embedders), perplexity and continuation (causal-lm: `sampling` says how), filled
    (masked-lm)."""
    task = info.get("task", "classification")
    if task in LM_TASKS:
        return lm_outputs(folder, session, info, data, sampling)
    scores = text_outputs(folder, session, info, data) if takes_text(info) else class_scores(session, info, data)
    if task == "embedding":
        return [{"embedding": [round(float(v), 6) for v in row]} for row in scores]
    out = []
    for row in scores:
        top = top_classes(row, info["labels"], top_k)
        out.append({"label": top[0]["label"], "probability": top[0]["probability"], "top": top,
                    "logits": [round(float(v), 6) for v in row]})
    return out


def line(record: dict) -> str:
    """A record as one tab-separated line: labels and probabilities, the embedding, or key: value."""
    if "top" in record:
        return "\t".join(f"{t['label']}\t{t['probability']:.4f}" for t in record["top"])
    if "embedding" in record:
        return json.dumps(record["embedding"])
    return "\t".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v!r}" for k, v in record.items())


def lm_outputs(folder: Path, session, info: dict, texts: list[str], sampling: Sampling | None = None) -> list[dict]:
    """Language-model bundles, one text at a time (no padding, as they were trained on packed text).
    causal-lm: the text's perplexity under the model and its continuation (bundle/generate.py: with the
    KV cache, greedy or sampled); masked-lm: the text with each mask token replaced by the model's
    top prediction."""
    tok = BundleTokenizer(folder, info)
    gen = Generator(session, info["max_sequence_length"])

    def logits(ids: list[int]) -> np.ndarray:  # the whole text at once (an empty past where there is one)
        return gen.run(np.asarray([ids[-info["max_sequence_length"]:]], dtype=np.int64))[0][0].astype(np.float64)

    out = []
    for text in texts:
        ids = tok.ids(text, special=info["task"] == "masked-lm", truncate=False)
        if info["task"] == "masked-lm":
            lg, filled = logits(ids), list(ids)
            for pos in [i for i, t in enumerate(ids) if t == tok.mask_token_id]:
                filled[pos] = int(lg[pos].argmax())
            out.append({"filled": tok.decode(filled, skip_special=True)})
            continue
        window = ids[-info["max_sequence_length"]:]  # what logits() scores: the text's last positions
        nll, tokens = PERPLEXITY.partial(logits(window)[None], np.asarray([window]))
        new = list(gen.generate(ids, sampling or Sampling(), tok.eos_token_id))
        out.append({"perplexity": PERPLEXITY.finish(nll, tokens) if tokens else float("nan"),
                    "continuation": tok.decode(new), "tokens": len(new)})
    return out

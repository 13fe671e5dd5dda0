"""How fast a causal LM generates, as an app sees it: the time to the first token of a prompt, and decode
tokens per second after it, greedy at batch 1, with the KV cache and without it (every token reruns
the whole prefix). onnxruntime sessions and the PyTorch teacher (with its own cache) are timed the
same way, side by side in rounds: each round runs one whole generation of every model, in an order
rotated every round, so a load that comes and goes falls on all of them alike."""

from __future__ import annotations

import time
from typing import Callable, Hashable

import numpy as np

from kdpipe.bundle.generate import Generator, Sampling

Run = Callable[[], tuple[float, int, float]]  # -> (seconds to the first token, tokens after it, their seconds)


def onnx_generation(session, prompt: list[int], new_tokens: int, use_cache: bool) -> Run:
    gen = Generator(session)
    sampling = Sampling(max_new_tokens=new_tokens)

    def run():
        start = time.perf_counter()
        tokens = gen.generate(prompt, sampling, None, use_cache)
        next(tokens)
        first = time.perf_counter()
        n = sum(1 for _ in tokens)
        return first - start, n, time.perf_counter() - first

    return run


def torch_generation(hf_model, prompt: list[int], new_tokens: int, use_cache: bool) -> Run:
    """A transformers causal LM's greedy loop on the CPU: the prompt, then one token a forward pass with
    the model's own past_key_values (or the whole sequence again, without the cache). The attention
    mask is always given: without it and without a cache, transformers builds the causal mask on a
    path 3-5x slower (measured on GPT-2, 4.57), which would flatter every ratio against PyTorch."""
    import torch

    def run():
        with torch.inference_mode():
            start = time.perf_counter()
            ids = torch.tensor([prompt])
            out = hf_model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=use_cache)
            token = out.logits[0, -1].argmax().view(1, 1)
            first = time.perf_counter()
            for _ in range(new_tokens - 1):
                ids = torch.cat([ids, token], 1)
                mask = torch.ones_like(ids)
                out = (
                    hf_model(input_ids=token, attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
                    if use_cache
                    else hf_model(input_ids=ids, attention_mask=mask, use_cache=False)
                )
                token = out.logits[0, -1].argmax().view(1, 1)
            return first - start, new_tokens - 1, time.perf_counter() - first

    return run


def time_generation(runs: dict[Hashable, Run], rounds: int = 3, warmup: int = 1) -> dict[Hashable, dict]:
    """Medians over `rounds` of each run's time to the first token (ms) and decode tokens per second."""
    keys = list(runs)
    for key in keys:
        for _ in range(warmup):
            runs[key]()
    got: dict[Hashable, list[tuple[float, int, float]]] = {k: [] for k in keys}
    for r in range(rounds):
        shift = r % max(1, len(keys))
        for key in keys[shift:] + keys[:shift]:
            got[key].append(runs[key]())
    out = {}
    for key, samples in got.items():
        first = np.array([s[0] for s in samples]) * 1000.0
        rate = np.array([s[1] / s[2] if s[2] > 0 else float("nan") for s in samples])
        out[key] = {"first_token_ms": float(np.median(first)), "decode_tokens_per_s": float(np.median(rate)),
                    "decode_tokens": int(samples[0][1]), "rounds": rounds}
    return out

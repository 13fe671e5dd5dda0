"""The teacher's outputs on the training split, computed once and reused every epoch (the inputs do
not change between epochs).

- dense: every logit, float32. Exact; (vocab x 4) bytes per position, so LMs soon outgrow memory.
- topk: the k largest teacher probabilities (at the KD temperature) per position, renormalised over
  those k; ids int32 + probabilities float16. Biased: the tail's mass is dropped.
- sampled: k tokens drawn from the teacher's distribution (at the temperature) per position, kept as
  (id, count/k): an unbiased estimate of the distribution, so the KD gradient is unbiased in
  expectation ("Sparse Logit Sampling", Anshumann et al., ACL 2025). Same storage as topk.

With a training checkpoint, a cache of at most STORE_LIMIT bytes is also stored beside it in the run folder
(<run>/.checkpoints/<stage>/<role>.teacher-cache.pt, same key), so a resumed run does not run the
teacher over the training split again.

Sparse caches serve forward KL (the student's log-probabilities at the stored ids, weighted by the
stored probabilities); reverse KL and JSD need the teacher's whole distribution.

With intermediate-layer matching the teacher's hidden states at the matched layers are cached too
(float16, every position of the padded input): without them the teacher ran live on every step,
a third of a KD step of the text-classification example.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdpipe.data.splits import length_order
from kdpipe.errors import ModelError

STORE_LIMIT = 256 << 20  # bytes: caches up to this size are also kept in the run folder for a resume


@dataclass
class SparseTargets:
    """Teacher distributions stored sparsely: ids and probabilities, (..., k) each."""

    ids: torch.Tensor  # int32
    probs: torch.Tensor  # float16; rows sum to 1 (padding entries 0)

    def __getitem__(self, idx) -> "SparseTargets":
        return SparseTargets(self.ids[idx], self.probs[idx])

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device) -> "SparseTargets":
        return SparseTargets(self.ids.to(device), self.probs.to(device))

    @property
    def nbytes(self) -> int:
        return self.ids.numel() * self.ids.element_size() + self.probs.numel() * self.probs.element_size()


@dataclass
class WithHidden:
    """Cached outputs (dense or sparse) and the teacher's hidden states at the matched layers,
    [N, sequence, layers, width] float16: targets of an MSE, for which half precision's three
    significant digits are ample, at half the memory."""

    out: "torch.Tensor | SparseTargets"
    hidden: torch.Tensor

    def __getitem__(self, idx) -> "WithHidden":
        return WithHidden(self.out[idx], self.hidden[idx])

    def to(self, device) -> "WithHidden":
        return WithHidden(self.out.to(device), self.hidden.to(device))

    @property
    def nbytes(self) -> int:
        return _nbytes(self.out) + self.hidden.numel() * self.hidden.element_size()


def _nbytes(cache) -> int:
    if isinstance(cache, torch.Tensor):
        return cache.numel() * cache.element_size()
    return cache.nbytes


def sparsify(logits: torch.Tensor, fmt: str, k: int, temperature: float, gen: torch.Generator) -> SparseTargets:
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    k = min(k, probs.shape[-1])
    if fmt == "topk":
        p, ids = probs.topk(k, dim=-1)
        p = p / p.sum(-1, keepdim=True)
        return SparseTargets(ids.int(), p.half())
    if fmt == "sampled":
        flat = probs.reshape(-1, probs.shape[-1])
        draws = torch.multinomial(flat, k, replacement=True, generator=gen)  # (positions, k)
        draws, _ = draws.sort(-1)
        # a token drawn c times gets weight c/k, once, at its first slot (the others weigh 0)
        first = torch.ones_like(draws, dtype=torch.bool)
        first[:, 1:] = draws[:, 1:] != draws[:, :-1]
        counts = torch.zeros_like(draws, dtype=torch.float32)
        counts.scatter_add_(1, _first_slot(first), torch.ones_like(counts))
        weights = counts / k
        shape = (*probs.shape[:-1], k)
        return SparseTargets(draws.reshape(shape).int(), weights.reshape(shape).half())
    raise ValueError(f"unknown sparse format {fmt!r}")


def _first_slot(first: torch.Tensor) -> torch.Tensor:
    """For each slot, the index of the first slot holding the same (sorted) token."""
    idx = torch.arange(first.shape[1], device=first.device).expand_as(first)
    return torch.where(first, idx, torch.zeros_like(idx)).cummax(1).values


@torch.inference_mode()
def build(teacher: nn.Module, x: torch.Tensor, fmt: str = "dense", k: int = 32, temperature: float = 1.0,
          seed: int = 0, batch_size: int = 64, hidden: tuple[int, ...] = ()):
    """The teacher's outputs for all of x, in the given format (batched, no autograd); with `hidden`
    (layer indices; the teacher keeps its hidden states, `capture`), a WithHidden."""
    teacher.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    states = None
    if hidden:
        width = teacher.hf.config.hidden_size
        states = torch.zeros((len(x), x.shape[-1], len(hidden), width), dtype=torch.float16, device=x.device)
    order = length_order(x)  # padded texts shortest first: the model computes little padding
    parts = []
    for i in range(0, len(x), batch_size):
        idx = slice(i, i + batch_size) if order is None else order[i : i + batch_size]
        out = teacher(x[idx]).float()
        parts.append(out if fmt == "dense" else sparsify(out, fmt, k, temperature, gen))
        if states is not None:  # the model may have cut trailing padding: the rest stays 0 (masked anyway)
            h = torch.stack([teacher.hidden[j] for j in hidden], dim=2)
            if h.abs().max() > torch.finfo(torch.float16).max:
                raise ModelError("distill.intermediate.hidden: the teacher's hidden states exceed float16's range "
                                 "and cannot be cached; set distill.cache_teacher: false (the teacher then runs live)")
            states[idx, : h.shape[1]] = h.half()
    back = slice(None) if order is None else torch.argsort(order)  # rows in x's order again
    if fmt == "dense":
        out = torch.cat(parts)[back]
    else:
        out = SparseTargets(torch.cat([p.ids for p in parts])[back], torch.cat([p.probs for p in parts])[back])
    return out if states is None else WithHidden(out, states)


def bytes_per_item(teacher: nn.Module, x: torch.Tensor, fmt: str, k: int, hidden: tuple[int, ...] = ()) -> int:
    """Storage per sample in this format (dense: 4 bytes a logit; sparse: 6 bytes an entry; hidden
    states: 2 bytes a value at every position of the padded input)."""
    with torch.inference_mode():
        out = teacher.eval()(x[:1])
    per_position = out[0].shape[-1] * 4 if fmt == "dense" else min(k, out.shape[-1]) * 6
    states = x.shape[-1] * len(hidden) * teacher.hf.config.hidden_size * 2 if hidden else 0
    return int(out[0].numel() // out.shape[-1] * per_position) + states


def load_or_build(checkpoint, teacher: nn.Module, x: torch.Tensor, fmt: str, k: int, temperature: float,
                  seed: int, hidden: tuple[int, ...] = ()):
    """build(), or the copy a checkpointed earlier attempt of this training stored; returns
    (cache, whether it was loaded)."""
    store = None
    if checkpoint is not None and checkpoint.every > 0:
        from kdpipe.training.resume import TrainCheckpoint

        store = TrainCheckpoint(checkpoint.path.with_name(checkpoint.path.stem + ".teacher-cache.pt"), checkpoint.key)
        state = store.load()
        if state is not None and state.get("format") == fmt and tuple(state.get("hidden_layers", ())) == hidden:
            out = state["logits"] if fmt == "dense" else SparseTargets(state["ids"], state["probs"])
            cache = out if not hidden else WithHidden(out, state["hidden"])
            return cache.to(x.device), True
    cache = build(teacher, x, fmt, k, temperature, seed, hidden=hidden)
    if store is not None and _nbytes(cache) <= STORE_LIMIT:  # larger ones: rebuilding beats writing them out
        c = cache.to("cpu")
        out = c.out if hidden else c
        state = {"format": fmt, **({"logits": out} if fmt == "dense" else {"ids": out.ids, "probs": out.probs})}
        if hidden:
            state.update(hidden_layers=list(hidden), hidden=c.hidden)
        store.save(state)
    return cache, False

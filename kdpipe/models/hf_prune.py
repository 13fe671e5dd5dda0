"""Structured pruning of BERT-family transformers by activation importance (NVIDIA Minitron's recipe).

Calibration batches run through the model once; attention heads are ranked by the norm of their
output, FFN neurons by their mean |activation|, hidden (residual) channels by their mean |value| at
every LayerNorm. Whole blocks, when a count of them is to be kept, are ranked by greedy removal:
each step drops the block without which the stack's output stays closest to the full model's
(rank_blocks). The narrower model of the same class is then built and the kept slices copied in.

Widths stay the same in every block, so the result is a plain config of its model type:
save_pretrained / from_pretrained, optimum's exporter and onnxruntime's fusions take it like any
other model. The head size is kept. By default heads go with the hidden width (BERT's heads x head size
= hidden size); fewer heads than that are kept through transformers' own head pruning (the config's
`pruned_heads`, which from_pretrained reapplies), so the residual width can stay while half the
heads go. Each block keeps its own most important heads.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from kdpipe.errors import ConfigError, ModelError
from kdpipe.models.hf import layer_list

# A block's parts, by name inside the block, as BERT, RoBERTa, ELECTRA, XLM-R and MiniLM lay them out.
IMPORTANCE_SAMPLES = 512  # calibration inputs the importance is measured on (Minitron used 1,024)
LAYER_SEARCH_SAMPLES = 256  # of those, the inputs each candidate of the greedy layer search runs on
QKV = ("attention.self.query", "attention.self.key", "attention.self.value")
ATTN_OUT, FFN_IN, FFN_OUT = "attention.output.dense", "intermediate.dense", "output.dense"


@dataclass
class Importance:
    hidden: torch.Tensor  # [hidden]
    heads: torch.Tensor  # [layers, heads]; -inf where a block has fewer heads (pruned before)
    ffn: torch.Tensor  # [layers, intermediate]
    blocks: torch.Tensor | None  # [layers]: the step of the greedy removal that drops a block (higher:
    # kept longer); None where no layer count was asked for (the search costs ~n^2/2 forward passes)
    tokens: int


@dataclass
class Plan:
    """What is kept: teacher block indices, hidden channels, and per kept block its heads and neurons."""

    layers: list[int]
    hidden: list[int]
    heads: list[list[int]]
    ffn: list[list[int]]


def check_layout(model: nn.Module, where: str = "pruning") -> None:
    _, stack = layer_list(model)
    block = stack[0]
    missing = [n for n in (*QKV, ATTN_OUT, FFN_IN, FFN_OUT) if not isinstance(_get(block, n), nn.Linear)]
    if missing:
        raise ModelError(f"{where}: transformer pruning knows BERT-family blocks (bert, roberta, electra, "
                         f"xlm-roberta); {model.config.model_type} blocks have no {', '.join(missing)}")


def _get(module: nn.Module, name: str):
    try:
        return module.get_submodule(name)
    except AttributeError:
        return None


def _inputs(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.as_tensor(x)
    return (t[:, 0], t[:, 1]) if t.dim() == 3 else (t, torch.ones_like(t))


@torch.inference_mode()
def measure_importance(model: nn.Module, x: np.ndarray, batch_size: int = 16, rank_layers: bool = False) -> Importance:
    """Activation importance over the inputs x (token ids, or ids and mask stacked as the tasks feed
    them); padding positions do not count. rank_layers: rank whole blocks too (rank_blocks)."""
    check_layout(model)
    stack_name, stack = layer_list(model)
    cfg = model.config
    n, head_size = len(stack), cfg.hidden_size // cfg.num_attention_heads
    block_heads = heads_per_block(model)
    acc = {"hidden": torch.zeros(cfg.hidden_size), "heads": torch.zeros(n, cfg.num_attention_heads),
           "ffn": torch.zeros(n, _get(stack[0], FFN_IN).out_features)}
    state = {"mask": None}

    def masked_sum(t):  # [batch, seq, ...] -> sum over real positions
        m = state["mask"].to(t.dtype).view(*state["mask"].shape, *([1] * (t.dim() - 2)))
        return (t * m).sum((0, 1))

    hooks = []
    norms = [m for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)
             and (name.startswith(stack_name) or "embeddings" in name)]
    def channels(m, i, o):  # (a hook that returns a value would replace the output)
        acc["hidden"].add_(masked_sum(o.abs().float()))

    hooks += [norm.register_forward_hook(channels) for norm in norms]
    for li, block in enumerate(stack):
        def per_head(m, i, li=li):
            h, k = i[0].float(), block_heads[li]
            acc["heads"][li, :k] += masked_sum(h.view(*h.shape[:2], k, head_size).norm(dim=-1))

        def neurons(m, i, o, li=li):
            acc["ffn"][li] += masked_sum(o.abs().float())

        hooks += [_get(block, ATTN_OUT).register_forward_pre_hook(per_head),
                  _get(block, "intermediate").register_forward_hook(neurons)]
    was_training = model.training
    model.eval()
    tokens = 0
    try:
        for i in range(0, len(x), batch_size):
            ids, mask = _inputs(x[i:i + batch_size])
            state["mask"] = mask
            tokens += int(mask.sum())
            model(input_ids=ids, attention_mask=mask)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not tokens:
        raise ModelError("pruning: the calibration inputs hold no real tokens")
    scores = {k: v / tokens for k, v in acc.items()}
    scores["heads"] = _without_pruned(scores["heads"], block_heads)
    blocks = rank_blocks(model, x[:LAYER_SEARCH_SAMPLES], batch_size) if rank_layers else None
    return Importance(**scores, blocks=blocks, tokens=tokens)


@torch.inference_mode()
def rank_blocks(model: nn.Module, x: np.ndarray, batch_size: int = 16) -> torch.Tensor:
    """Whole blocks scored by greedy removal: each step drops the block without which the stack's last
    hidden states stay closest (mean cosine over real tokens) to the full model's; a block dropped at
    step s scores s, the last one standing n - 1, so the top k blocks are the greedy k-block model.
    Why not a block's own change of its input (ShortGPT's 1 - cosine, used here before): that ranks
    each block alone, and on all-MiniLM-L6-v2 it kept blocks 3, 4, 5 for three (validation cosine 56.5
    before training) where 0, 4, 5 start at 68.1, the best of all 20 triples (benchmarks/README.md)."""
    base = model.base_model  # the stack's output, without a task head (an MLM head over the vocabulary)
    stack_name, stack = layer_list(base)
    parent_name, _, attr = stack_name.rpartition(".")
    parent = base.get_submodule(parent_name) if parent_name else base
    batches = []
    ids_all, mask_all = _inputs(x)
    order = torch.argsort(mask_all.sum(1))  # similar lengths together; columns no text uses are cut
    for i in range(0, len(order), batch_size):
        ids, mask = ids_all[order[i:i + batch_size]], mask_all[order[i:i + batch_size]]
        used = mask.bool().any(0)
        batches.append((ids[:, used], mask[:, used]))
    was_training = base.training
    base.eval()

    def run() -> list[torch.Tensor]:
        return [base(input_ids=ids, attention_mask=mask)[0].float() for ids, mask in batches]

    try:
        reference = run()
        tokens = sum(float(m.sum()) for _, m in batches)
        if not tokens:
            raise ModelError("pruning: the calibration inputs hold no real tokens")

        def closeness(kept: list[int]) -> float:
            setattr(parent, attr, nn.ModuleList([stack[i] for i in kept]))
            total = sum(float((nn.functional.cosine_similarity(out, ref, dim=-1) * m).sum())
                        for out, ref, (_, m) in zip(run(), reference, batches))
            return total / tokens

        kept, scores = list(range(len(stack))), torch.zeros(len(stack))
        for step in range(len(stack) - 1):
            drop = max(kept, key=lambda b: closeness([k for k in kept if k != b]))
            scores[drop] = step
            kept.remove(drop)
        scores[kept[0]] = len(stack) - 1
    finally:
        setattr(parent, attr, stack)
        base.train(was_training)
    return scores


def _without_pruned(heads: torch.Tensor, block_heads: list[int]) -> torch.Tensor:
    """Head scores with -inf where a block has fewer heads (pruned before): those are never picked."""
    for li, k in enumerate(block_heads):
        heads[li, k:] = -torch.inf
    return heads


def heads_per_block(model: nn.Module) -> list[int]:
    """The attention heads each block computes (fewer than the config's count where heads were pruned)."""
    return [_get(b, "attention.self").num_attention_heads for b in layer_list(model)[1]]


def leading(model: nn.Module) -> Importance:
    """Scores that rank every channel, head, neuron and block by position: a plan made from them keeps
    the leading slice of every matrix (init: slice), with make_plan's checks."""
    cfg, block_heads = model.config, heads_per_block(model)
    heads = _without_pruned(-torch.arange(cfg.num_attention_heads, dtype=torch.float).repeat(len(block_heads), 1),
                            block_heads)
    first = layer_list(model)[1][0]
    return Importance(
        hidden=-torch.arange(cfg.hidden_size, dtype=torch.float),
        heads=heads,
        ffn=-torch.arange(_get(first, FFN_IN).out_features, dtype=torch.float).repeat(len(block_heads), 1),
        blocks=-torch.arange(len(block_heads), dtype=torch.float),
        tokens=0,
    )


def _top(scores: torch.Tensor, k: int) -> list[int]:
    return sorted(torch.argsort(scores, descending=True, stable=True)[:k].tolist())


def make_plan(model: nn.Module, imp: Importance, hidden_size: int | None = None, intermediate_size: int | None = None,
              layers: list[int] | int | None = None, num_heads: int | None = None) -> Plan:
    """The most important channels, heads and neurons for the target widths; `layers` is a list of
    block indices to keep, or how many of the most important blocks to keep (None: all); `num_heads`
    the heads each block keeps (None: as many as the hidden width holds, at most those it has)."""
    cfg = model.config
    head_size = cfg.hidden_size // cfg.num_attention_heads
    hidden_size = hidden_size or cfg.hidden_size
    intermediate_size = intermediate_size or imp.ffn.shape[1]
    if hidden_size % head_size or not 0 < hidden_size <= cfg.hidden_size:
        raise ModelError(f"pruning: hidden size {hidden_size} must be a multiple of the head size {head_size} "
                         f"(the head size is kept) and at most {cfg.hidden_size}")
    if not 0 < intermediate_size <= imp.ffn.shape[1]:
        raise ModelError(f"pruning: intermediate size {intermediate_size} must be in 1..{imp.ffn.shape[1]}")
    n = imp.heads.shape[0]
    if layers is None:
        kept = list(range(n))
    elif isinstance(layers, int):
        if not 0 < layers <= n:
            raise ModelError(f"pruning: cannot keep {layers} of {n} layers")
        if imp.blocks is None:
            raise ValueError("make_plan: a layer count needs importance measured with rank_layers=True")
        kept = _top(imp.blocks, layers)
    else:
        kept = list(layers)
    room = min(hidden_size // head_size, min(heads_per_block(model)))
    heads = room if num_heads is None else num_heads
    if not 0 < heads <= room:
        raise ModelError(f"pruning: {heads} attention heads per block; hidden size {hidden_size} holds 1..{room} "
                         f"(the head size {head_size} is kept)")
    return Plan(layers=kept, hidden=_top(imp.hidden, hidden_size), heads=[_top(imp.heads[i], heads) for i in kept],
                ffn=[_top(imp.ffn[i], intermediate_size) for i in kept])


def apply_plan(model: nn.Module, plan: Plan) -> nn.Module:
    """A new model of the same class with the plan's widths and blocks, weights copied from `model`."""
    check_layout(model)
    stack_name, _ = layer_list(model)
    cfg = copy.deepcopy(model.config)
    head_size = cfg.hidden_size // cfg.num_attention_heads
    old_hidden = cfg.hidden_size
    cfg.hidden_size, cfg.num_attention_heads = len(plan.hidden), len(plan.hidden) // head_size
    cfg.intermediate_size, cfg.num_hidden_layers = len(plan.ffn[0]), len(plan.layers)
    cfg.pruned_heads = {}
    new = type(model)(cfg).to(next(model.parameters()).dtype)
    fewer = {i: list(range(len(h), cfg.num_attention_heads)) for i, h in enumerate(plan.heads)
             if len(h) < cfg.num_attention_heads}
    if fewer:  # transformers' head pruning: the kept heads are the block's first ones, recorded in the config
        new.prune_heads(fewer)
    hid = torch.tensor(plan.hidden)
    prefix = stack_name + "."
    state, filled = new.state_dict(), set()
    old_state = model.state_dict()

    def rows_cols(name: str, mod: nn.Linear) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if name.startswith(prefix):
            i, part = name[len(prefix):].split(".", 1)
            heads = torch.tensor([h * head_size + d for h in plan.heads[int(i)] for d in range(head_size)])
            ffn = torch.tensor(plan.ffn[int(i)])
            special = {**{q: (heads, hid) for q in QKV}, ATTN_OUT: (hid, heads), FFN_IN: (ffn, hid),
                       FFN_OUT: (hid, ffn)}
            if part in special:
                return special[part]
        return (hid if mod.out_features == old_hidden else None), (hid if mod.in_features == old_hidden else None)

    def old_name(name: str) -> str:
        if not name.startswith(prefix):
            return name
        i, rest = name[len(prefix):].split(".", 1)
        return f"{prefix}{plan.layers[int(i)]}.{rest}"

    for name, mod in new.named_modules():
        if isinstance(mod, nn.Linear):
            rows, cols = rows_cols(name, model.get_submodule(old_name(name)))
            picks = {"weight": (rows, cols), "bias": (rows,)}
        elif isinstance(mod, nn.Embedding):
            picks = {"weight": (None, hid)}
        elif isinstance(mod, nn.LayerNorm):
            picks = {"weight": (hid,), "bias": (hid,)}
        else:
            continue
        for pname, index in picks.items():
            key = f"{name}.{pname}" if name else pname
            if key not in state:
                continue
            t = old_state[old_name(key)]
            for dim, idx in enumerate(index):
                if idx is not None:
                    t = t.index_select(dim, idx)
            state[key] = t.clone()
            filled.add(key)
    for key in state:
        if key in filled:
            continue
        source = old_state.get(old_name(key))
        if source is None or source.shape != state[key].shape:
            raise ModelError(f"pruning: cannot carry {key} over to the pruned {cfg.model_type} "
                             f"({None if source is None else tuple(source.shape)} -> {tuple(state[key].shape)})")
        state[key] = source.clone()
    new.load_state_dict(state)
    if getattr(new.config, "tie_word_embeddings", False):
        new.tie_weights()
    return new.train(model.training)


def prune_model(model: nn.Module, x: np.ndarray, hidden_size=None, intermediate_size=None, layers=None, num_heads=None):
    """Measure importance on x, plan and apply: (pruned model, plan, importance)."""
    imp = measure_importance(model, x, rank_layers=isinstance(layers, int))
    plan = make_plan(model, imp, hidden_size, intermediate_size, layers, num_heads)
    return apply_plan(model, plan), plan, imp


@dataclass
class PruneWidths:
    hidden: int  # hidden channels kept
    heads: int  # heads each block keeps
    had: int  # heads each block had
    neurons: int  # FFN neurons kept


def prune_widths(hf, pc) -> PruneWidths:
    """What the prune section keeps of this transformer; a clear ConfigError where it cannot (checked
    in pre-flight too, before any training)."""
    cfg = hf.config
    head = cfg.hidden_size // cfg.num_attention_heads
    hidden = pc.ratio if pc.hidden is None else pc.hidden
    ffn = pc.ratio if pc.ffn is None else pc.ffn
    width = max(1, round(cfg.num_attention_heads * (1 - hidden)))  # heads the kept width holds
    had = min(heads_per_block(hf))
    heads = min(width, had) if pc.heads is None else max(1, round(had * (1 - pc.heads)))
    if heads > width:
        raise ConfigError(f"prune.heads: keeping {heads} of {had} heads needs a hidden width of {heads * head}; "
                          f"prune.hidden leaves {width * head}")
    neurons = max(1, round(cfg.intermediate_size * (1 - ffn)))
    if pc.round_to:
        neurons = max(pc.round_to, neurons // pc.round_to * pc.round_to)
    if pc.layers >= cfg.num_hidden_layers:
        raise ConfigError(f"prune.layers: {pc.layers} would remove all {cfg.num_hidden_layers} layers of the student")
    return PruneWidths(width * head, heads, had, neurons)

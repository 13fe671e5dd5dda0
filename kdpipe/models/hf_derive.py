"""Students derived from a transformers teacher: a subset of its layers (DistilBERT's recipe: every
other layer, weights copied from the teacher), optionally narrower (hidden size, heads, FFN size;
those weights start as a slice of the teacher's, as its most important parts, or fresh)."""

from __future__ import annotations

import copy

from torch import nn

from kdpipe.errors import ModelError
from kdpipe.models import hf_prune
from kdpipe.models.hf import layer_list


def choose_layers(n_teacher: int, layers) -> list[int]:
    if layers == "every_other":
        return list(range(0, n_teacher, 2))
    chosen = [int(i) for i in layers]
    bad = [i for i in chosen if not 0 <= i < n_teacher]
    if not chosen or bad or len(set(chosen)) != len(chosen):
        raise ModelError(f"student.layers {layers}: need distinct teacher layer indices in 0..{n_teacher - 1}")
    return chosen


# Config attributes for the widths, where a model type names them differently (transformers maps
# hidden_size and num_attention_heads itself for most types; gpt2's FFN width is n_inner).
WIDTH_ALIASES = {"intermediate_size": ("n_inner", "ffn_dim", "hidden_dim")}


def _narrow(config, widths: dict) -> None:
    keys = config.to_dict()
    for key, value in widths.items():
        attr = key if hasattr(config, key) else next((a for a in WIDTH_ALIASES.get(key, ()) if a in keys), None)
        if attr is None:
            raise ModelError(f"student.params.{key}: {config.model_type} configs have no such width")
        setattr(config, attr, int(value))
    heads = getattr(config, "num_attention_heads", None)
    if heads and config.hidden_size % heads:
        raise ModelError(f"student.params: hidden_size {config.hidden_size} is not a multiple of "
                         f"num_attention_heads {heads}")


def _keeps_head_size(teacher: nn.Module, widths: dict) -> bool:
    """A BERT-family student asking for fewer heads than its hidden width holds at the teacher's head
    size: built with that head size and pruned heads, as init prune builds it, not with wider heads."""
    cfg, heads = teacher.config, widths.get("num_attention_heads")
    if not heads or not getattr(cfg, "num_attention_heads", None):
        return False
    try:
        hf_prune.check_layout(teacher)
    except ModelError:
        return False
    return heads * (cfg.hidden_size // cfg.num_attention_heads) < widths.get("hidden_size", cfg.hidden_size)


def derive_student(teacher: nn.Module, layers="every_other", widths: dict | None = None, init: str = "slice",
                   calibration=None) -> tuple[nn.Module, list[int], list[int] | None]:
    """Same architecture, fewer layers, initialised from the chosen teacher layers and all of the
    teacher's other weights (embeddings, final norm, head). Narrower `widths` (hidden_size,
    num_attention_heads, intermediate_size) change the shapes: each such tensor then starts as the
    leading slice of the teacher's (init "slice"), as the slice of the most important channels,
    heads and neurons measured on `calibration` inputs (init "prune", kdpipe.models.hf_prune), or
    fresh (init "fresh"); tensors whose shape is unchanged are still copied. BERT-family students keep
    the teacher's head size: fewer heads than their width holds are pruned heads. `layers` may also be a
    number: keep that many of the teacher's layers, chosen by greedy removal on `calibration` (hf_prune.rank_blocks).
    Returns (student, teacher layer indices, teacher hidden channels the student's width holds, or
    None when it starts fresh)."""
    stack_name, stack = layer_list(teacher)
    widths = dict(widths or {})
    imp = None
    if init == "prune" or isinstance(layers, int):
        if calibration is None:
            raise ModelError("derive:teacher: init prune and a layer count need calibration inputs")
        imp = hf_prune.measure_importance(teacher, calibration, rank_layers=isinstance(layers, int))
    chosen = hf_prune.make_plan(teacher, imp, layers=layers).layers if isinstance(layers, int) \
        else choose_layers(len(stack), layers)
    if init == "prune" or _keeps_head_size(teacher, widths):
        # hf_prune builds the shape, keeping the head size (fewer heads than the width holds are pruned
        # heads): the most important parts (prune) or the leading ones (slice, and fresh re-initialised)
        plan = hf_prune.make_plan(teacher, imp if init == "prune" else hf_prune.leading(teacher),
                                  widths.pop("hidden_size", None), widths.pop("intermediate_size", None), chosen,
                                  widths.pop("num_attention_heads", None))
        if widths:
            who = "init prune" if init == "prune" else "a BERT-family student with fewer heads"
            raise ModelError(f"student.params: {who} cannot set {', '.join(widths)}")
        student = hf_prune.apply_plan(teacher, plan)
        if init == "fresh":
            student.apply(student._init_weights)
        return student, chosen, None if init == "fresh" else plan.hidden
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(chosen)
    if widths:
        _narrow(config, widths)
    student = type(teacher)(config)
    t_state = teacher.state_dict()
    prefix = f"{stack_name}."
    state = student.state_dict()
    for key, target in state.items():
        if key.startswith(prefix):
            i, rest = key[len(prefix):].split(".", 1)
            source = t_state[f"{prefix}{chosen[int(i)]}.{rest}"]
        else:
            source = t_state[key]
        if source.shape == target.shape:
            state[key] = source.clone()
        elif init == "slice" and source.dim() == target.dim():
            state[key] = source[tuple(slice(0, n) for n in target.shape)].clone()
        # else: keep the fresh initialisation of the narrower student
    student.load_state_dict(state)
    return student, chosen, list(range(config.hidden_size)) if init == "slice" else None

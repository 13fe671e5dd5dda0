"""Hugging Face transformers models: from a folder or hub id, from a config (tiny models built here),
and students derived from a teacher by keeping a subset of its layers (DistilBERT's recipe: every
other layer, weights copied from the teacher), optionally narrower (hidden size, heads, FFN size;
those weights start fresh or as a slice of the teacher's).

`hf:PATH_OR_ID` loads with the Auto class of the task; remote code runs only with
trust_remote_code set in the config. `hf-config:MODEL_TYPE` builds a fresh model from
AutoConfig.for_model(MODEL_TYPE, **params).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from kdpipe.errors import ModelError

AUTO_CLASSES = {
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "classification": "AutoModelForSequenceClassification",
    "embedding": "AutoModel",
}


class HFModule(nn.Module):
    """A transformers model as a module from one input tensor to one output tensor, which is what the
    training loop, evaluation and export expect: logits, or (pool=True) the mean-pooled sentence
    embedding, mapped by a learned projection into the teacher's embedding size when widths differ.

    Inputs are token ids [batch, sequence] (packed LM blocks: every position attends) or, for padded
    texts, ids and attention mask stacked as [batch, 2, sequence], exactly what an app feeds. With
    `capture` set, the hidden states and attention maps of the last call are kept for
    intermediate-layer matching.
    """

    def __init__(self, hf: nn.Module, pool: bool = False, project_to: int | None = None):
        super().__init__()
        self.hf, self.pool = hf, pool
        width = hf.config.hidden_size
        self.proj = nn.Linear(width, project_to) if pool and project_to and project_to != width else None
        self.capture = self.capture_attentions = False
        self.hidden = self.attentions = self.mask = None
        # One output per text (a pooled embedding, class logits): trailing padding can be cut off
        # before the model runs (a text's outputs ignore masked positions), which on short texts
        # padded to data.sequence_length saves most of the compute.
        self.trim = pool or type(hf).__name__.endswith("ForSequenceClassification")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.dim() == 3:  # ids and mask stacked
            input_ids, attention_mask = input_ids[:, 0], input_ids[:, 1]
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if self.trim and attention_mask is not None and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
                                                             or torch.compiler.is_compiling()):
            used = int(mask.any(0).nonzero().max()) + 1 if mask.any() else 1  # the last column any text uses
            input_ids, mask = input_ids[:, :used], mask[:, :used]
        extra = {"output_hidden_states": True, "output_attentions": self.capture_attentions} if self.capture else {}
        out = self.hf(input_ids=input_ids, attention_mask=mask, **extra)
        if self.capture:
            self.hidden, self.attentions, self.mask = out.hidden_states, out.attentions, mask
        if not self.pool:
            return out.logits
        w = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        emb = (out.last_hidden_state * w).sum(1) / w.sum(1).clamp(min=1.0)  # mean over real tokens
        return emb if self.proj is None else self.proj(emb)

    @torch.no_grad()
    def start_projection(self, channels: list[int]) -> None:
        """Start the projection as the map that puts each of the student's channels back where it
        came from in the teacher's width, so a student sliced or pruned from the teacher starts from
        the teacher's own embedding (restricted to the kept channels), not from a random map."""
        if self.proj is None:
            return
        self.proj.weight.zero_()
        self.proj.bias.zero_()
        self.proj.weight[torch.as_tensor(channels), torch.arange(len(channels))] = 1.0


def freeze_token_embeddings(model: HFModule) -> None:
    """Stop training a transformers model's token embedding table (distill.freeze_embeddings, which
    the config allows for transformers students only): the optimiser then skips its vocabulary x
    width weights."""
    model.hf.get_input_embeddings().weight.requires_grad_(False)


def _auto(task: str):
    import transformers

    return getattr(transformers, AUTO_CLASSES[task])


def check_folder(spec: str, where: str) -> None:
    """hf:PATH that names a folder (not a hub id) which is not there: one clear error."""
    scheme, _, name = spec.partition(":")
    if scheme == "hf" and not Path(name).exists() and (name.startswith(("/", ".", "~")) or name.count("/") >= 2):
        raise ModelError(f"{where} {spec!r}: folder {name} not found (relative to {Path.cwd()})")


def build_hf(spec: str, params: dict, task: str, where: str, trust_remote_code: bool = False) -> nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()  # e.g. "newly initialized head": expected when fine-tuning
    scheme, _, name = spec.partition(":")
    check_folder(spec, where)
    try:
        if scheme == "hf":
            return _auto(task).from_pretrained(name, trust_remote_code=trust_remote_code, **params)
        if scheme == "hf-config":
            from transformers import AutoConfig

            return _auto(task).from_config(AutoConfig.for_model(name, **params))
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{where} {spec!r}: cannot load ({' '.join(str(e).split())[:300]})") from None
    raise ModelError(f"{where} {spec!r}: expected hf:PATH_OR_ID or hf-config:MODEL_TYPE")


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer blocks: the ModuleList as long as config.num_hidden_layers."""
    n = model.config.num_hidden_layers
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if len(found) != 1:
        raise ModelError(f"cannot find the layer stack of {type(model).__name__} ({len(found)} candidates)")
    return found[0]


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
    from kdpipe.models import hf_prune

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
    from kdpipe.models import hf_prune

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

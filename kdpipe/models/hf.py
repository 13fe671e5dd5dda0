"""Hugging Face transformers models: from a folder or hub id, from a config (tiny models built here),
and students derived from a teacher by keeping a subset of its layers (DistilBERT's recipe: every
other layer, weights copied from the teacher).

`hf:PATH_OR_ID` loads with the Auto class of the task; remote code runs only with
trust_remote_code set in the config. `hf-config:MODEL_TYPE` builds a fresh model from
AutoConfig.for_model(MODEL_TYPE, **params).
"""

from __future__ import annotations

import copy

from torch import nn

from kdpipe.errors import ModelError

AUTO_CLASSES = {
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "classification": "AutoModelForSequenceClassification",
    "embedding": "AutoModel",
}


def _auto(task: str):
    import transformers

    return getattr(transformers, AUTO_CLASSES[task])


def build_hf(spec: str, params: dict, task: str, where: str, trust_remote_code: bool = False) -> nn.Module:
    scheme, _, name = spec.partition(":")
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


def derive_student(teacher: nn.Module, layers="every_other") -> tuple[nn.Module, list[int]]:
    """Same architecture, fewer layers, initialised from the chosen teacher layers and all of the
    teacher's other weights (embeddings, final norm, head). Returns (student, teacher layer indices)."""
    stack_name, stack = layer_list(teacher)
    chosen = choose_layers(len(stack), layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(chosen)
    student = type(teacher)(config)
    t_state = teacher.state_dict()
    prefix = f"{stack_name}."
    state = {}
    for key in student.state_dict():
        if key.startswith(prefix):
            i, rest = key[len(prefix):].split(".", 1)
            state[key] = t_state[f"{prefix}{chosen[int(i)]}.{rest}"]
        else:
            state[key] = t_state[key]
    student.load_state_dict(state)
    return student, chosen

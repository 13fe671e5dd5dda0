"""Defaults that suit the model family a config names, and where every resolved value came from.

A config that names only a teacher, the data and the task gets settings measured to work for that
family (the examples in configs/ are where they were measured): a pretrained transformer (`hf:`)
is distilled into a student made of half its layers with a small learning rate, warm-up, a few
epochs and a moderate temperature; a transformer built from a config (`hf-config:`) is trained here
first; an array model (built-in, `python:`, `torchvision:`) keeps the global defaults (the MNIST
example's). What the config itself sets always wins. `kdpipe show-config` says, for every key,
whether it came from the config, the family's defaults or the global defaults, and leaves out the
keys this task and family do not read.
"""

from __future__ import annotations

import copy

import yaml

TRANSFORMER_PREFIXES = ("hf:", "hf-config:")

# A language-model task with no teacher named gets the examples' small models, trained here.
TASK_MODELS = {
    "causal-lm": ({"model": "hf-config:gpt2", "params": {"n_layer": 4, "n_embd": 128, "n_head": 4}},
                  {"model": "hf-config:gpt2", "params": {"n_layer": 2, "n_embd": 128, "n_head": 4}}),
    "masked-lm": ({"model": "hf-config:bert", "params": {"num_hidden_layers": 4, "hidden_size": 128,
                                                          "num_attention_heads": 4, "intermediate_size": 512}},
                  {"model": "hf-config:bert", "params": {"num_hidden_layers": 2, "hidden_size": 128,
                                                          "num_attention_heads": 4, "intermediate_size": 512}}),
}

# Shared by both transformer families: pruning off (the student is already a subset of the teacher's
# layers, or a smaller config; width pruning stays one setting away), quantization calibrated on few
# samples (each costs a forward pass of a long sequence), batches of 32.
_TRANSFORMER = {
    "data": {"batch_size": 32},
    "prune": {"enabled": False},
    "quantize": {"calibration": ["minmax"], "calibration_samples": 64},
    "benchmark": {"batch_sizes": [1, 32]},
}

FAMILIES: dict[str, dict] = {
    # configs/text-classification.yaml and configs/embedding.yaml
    "pretrained transformer (hf:)": {
        **_TRANSFORMER,
        "teacher": {"train": {"epochs": 3, "lr": 1e-4, "warmup": 0.1}},
        "student": {"model": "derive:teacher", "params": {"layers": "every_other"}},
        "distill": {"epochs": 4, "lr": 1e-4, "warmup": 0.1},
        # post-training int8 broke a 3-layer MiniLM student (91.8% of its answers kept on 2,899 texts):
        # the teacher corrects it in the int8 form that ships (quantization-aware distillation)
        "quantize": {**_TRANSFORMER["quantize"], "variants": ["dynamic", "static", "fp16", "qad-int8"]},
    },
    # configs/causal-lm.yaml and configs/masked-lm.yaml
    "transformer from a config (hf-config:)": {
        **_TRANSFORMER,
        "data": {"batch_size": 16},
        "teacher": {"train": {"epochs": 12, "lr": 1e-3, "warmup": 0.1}},
        "distill": {"epochs": 6, "lr": 1e-3, "warmup": 0.1},
    },
    "array model (built-in, python:, torchvision:)": {},
}

# Token-level KD of language models: the teacher's distribution as it is (T = 1), half hard labels.
_LM_DISTILL = {"temperature": 1.0, "alpha": 0.5}
BY_TASK = {"classification": {"distill": {"temperature": 2.0, "alpha": 0.7}},  # the text-classification example's
           "causal-lm": {"distill": _LM_DISTILL, "export": {"opset": 18}},
           "masked-lm": {"distill": _LM_DISTILL, "export": {"opset": 18}},
           "embedding": {"distill": {"epochs": 3, "lr": 2e-4}}}


def _section(raw: dict, name: str) -> dict:
    v = raw.get(name)
    return v if isinstance(v, dict) else {}  # anything else is the validator's to name


def family_of(raw: dict) -> str:
    task = raw.get("task", "classification")
    teacher = _section(raw, "teacher").get("model") or (TASK_MODELS.get(task, ({},))[0].get("model")) or ""
    if str(teacher).startswith("hf:"):
        return "pretrained transformer (hf:)"
    if str(teacher).startswith("hf-config:"):
        return "transformer from a config (hf-config:)"
    return "array model (built-in, python:, torchvision:)"


def family_defaults(raw: dict) -> dict:
    """The nested settings the config's family and task change from the global defaults."""
    family = family_of(raw)
    out = copy.deepcopy(FAMILIES[family])
    task = raw.get("task", "classification")
    if family != "array model (built-in, python:, torchvision:)":
        _merge_into(out, copy.deepcopy(BY_TASK.get(task, {})))
    teacher_given = bool(_section(raw, "teacher").get("model"))
    if task in TASK_MODELS and not teacher_given:
        out.setdefault("teacher", {}).update(copy.deepcopy(TASK_MODELS[task][0]))
        out["student"] = copy.deepcopy(TASK_MODELS[task][1])
    # a given teacher trains only when asked to (teacher.finetune): its training settings stay out of the
    # config (and so of the run's record) otherwise
    if family == "pretrained transformer (hf:)" and not _section(raw, "teacher").get("finetune"):
        out["teacher"].pop("train", None)
    # the student comes whole: the family's params mean nothing to a student the config names
    if _section(raw, "student").get("model"):
        out.pop("student", None)
    return out


def with_family_defaults(raw: dict) -> dict:
    """The raw config with its family's defaults filled in under it (the config's own values win)."""
    base = family_defaults(raw)
    _merge_into(base, copy.deepcopy(raw))
    return base


def _merge_into(base: dict, top: dict) -> None:
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict) and k not in ("params",):
            _merge_into(base[k], v)
        else:
            base[k] = v


# --- where each value came from, and which keys a config's task and family read ---------------------

def _leaves(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("params", "students"):
            out |= _leaves(v, f"{prefix}{k}.")
        out.add(f"{prefix}{k}")
    return out


def provenance(raw: dict) -> dict[str, str]:
    """key -> "config" | "family: <name>" for every key set by the config or by its family."""
    fam = family_of(raw)
    out = {k: f"{fam} default" for k in _leaves(family_defaults(raw))}
    out.update({k: "config" for k in _leaves(raw)})
    return out


def unused_keys(cfg) -> set[str]:
    """Keys the config's task and model family never read (shown only when the config sets them)."""
    transformer = cfg.teacher.model.startswith(TRANSFORMER_PREFIXES)
    text = transformer or cfg.task != "classification"
    lm = cfg.task in ("causal-lm", "masked-lm")
    out = set()
    if not text:
        out |= {"data.text_column", "data.sequence_length", "data.vocab_size", "data.mask_prob", "data.extra_texts",
                "data.extra_texts_max", "data.other_source", "benchmark.sequence_lengths", "distill.intermediate",
                "distill.freeze_embeddings", "teacher.trust_remote_code", "student.trust_remote_code"}
    else:
        out |= {"data.image_size", "data.channels"}
    if cfg.task != "classification":
        out |= {"data.label_column", "data.labels", "data.label_fraction", "teacher.labels"}
    if not lm:
        out |= {"distill.cache_format", "distill.cache_k"}
    if cfg.task != "masked-lm":
        out.add("data.mask_prob")
    if not cfg.teacher.model.startswith("hf-config:"):  # a tokenizer is trained here only for those
        out.add("data.vocab_size")
    if cfg.task != "embedding":
        out.add("distill.embedding_loss")
    if cfg.distill.divergence != "jsd":
        out.add("distill.beta")
    if cfg.task == "embedding":  # the teacher's embeddings are the targets: no temperature, no hard labels
        out |= {"distill.temperature", "distill.alpha", "distill.divergence", "distill.baseline"}
    return out


def show(cfg, raw: dict, base_dir=None) -> str:
    """The resolved config as YAML, each value with where it came from; null defaults resolved
    (output_dir, data.split_seed); keys this task and family do not read left out unless set."""
    from pydantic import BaseModel

    where = provenance(raw)
    unused = unused_keys(cfg)
    data = cfg.model_dump(mode="json")
    resolved = {"output_dir": (str(cfg.run_dir(base_dir)), f"default: artifacts/{cfg.name}"),
                "data.split_seed": (cfg.data_seed, "default: the run's seed")}
    lines = [f"# kdpipe show-config: model family {family_of(raw)}, task {cfg.task}",
             "# each value: from the config, from the family's defaults, or kdpipe's default"]
    skipped = []

    def emit(model, values: dict, prefix: str, indent: int) -> None:
        for name, field in model.model_fields.items():
            key, value = f"{prefix}{name}", values[name]
            sub = field.annotation if isinstance(field.annotation, type) else None
            if sub is not None and issubclass(sub, BaseModel) and isinstance(value, dict):  # a Section
                lines.append(f"{'  ' * indent}{name}:")
                emit(sub, value, f"{key}.", indent + 1)
                continue
            origin = where.get(key, "default")
            if key in unused and origin == "default":
                skipped.append(key)
                continue
            note = origin
            if key in resolved and value is None:
                value, note = resolved[key][0], resolved[key][1]
            if key in unused:
                note += f"; not read for task {cfg.task} with this model family"
            text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
            text = text.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"{'  ' * indent}{name}: {text}  # {note}")

    emit(type(cfg), data, "", 0)
    if skipped:
        lines.append(f"# not read for task {cfg.task} with this model family (left out): {', '.join(skipped)}")
    return "\n".join(lines) + "\n"

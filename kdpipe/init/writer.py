"""`kdpipe init`: write a commented config for the user's teacher and data (what infer.py found),
holding only what was inferred; everything else comes from the model family's defaults (defaults.py),
which `kdpipe show-config` prints with their origin."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kdpipe.errors import ConfigError
from kdpipe.init.infer import DataFacts, TeacherFacts, choose_task, look_at_data, look_at_teacher


def build(teacher: str, data: str, task: str | None = None, student: str | None = None, name: str | None = None,
          label_column: str | None = None, text_column: str | None = None,
          teacher_weights: str | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """(raw config, [(what, why)]): the config's keys and the facts behind them, a line each."""
    d, t = look_at_data(data, label_column, text_column), look_at_teacher(teacher)
    task, task_why = choose_task(d, t, task)
    facts = [("data", d.why), ("teacher", t.why), (f"task: {task}", task_why)]
    cfg: dict = {"name": name or _name_of(data), "task": task, "data": {"source": data}, "teacher": {"model": teacher}}
    if teacher_weights:
        cfg["teacher"]["weights"] = _weights(teacher_weights, t)
        facts.append(("teacher.weights", "the trained teacher's checkpoint: the teacher is not trained here"))
    if d.label_column and d.label_column != "label" and task == "classification":
        cfg["data"]["label_column"] = d.label_column
    if d.unlabelled and task == "classification":
        cfg["data"]["drop_unlabelled"] = True
    facts += d.notes
    if d.text_column and d.text_column != "text":
        cfg["data"]["text_column"] = d.text_column
    if d.kind == "images" and d.image_size:
        cfg["data"]["image_size"] = list(d.image_size)
        cfg["data"]["channels"] = d.channels
    if task == "classification" and t.family == "pretrained":
        if t.id2label and d.labels and sorted(t.id2label) == sorted(d.labels):
            cfg["data"]["labels"] = t.id2label  # the head's own order
            facts.append(("teacher.finetune: false", "its classification head already has these labels"))
        else:
            cfg["teacher"]["finetune"] = True
            facts.append(("teacher.finetune: true", "its head does not know these labels: it is fine-tuned on them "
                          "first (a third or more of the run's time); the student and the no-KD baseline both start "
                          "from the fine-tuned layers"))
    if t.family == "pretrained" and d.rows and task in ("classification", "embedding"):
        _enough_steps(cfg, d.rows, facts)
    if d.kind in ("labelled texts", "texts") and t.tokenizer is not None:
        length, why = _sequence_length(d.texts, t)
        cfg["data"]["sequence_length"] = length
        facts.append((f"data.sequence_length: {length}", why))
    small = _small_models(teacher) if t.family == "config" else None
    if small:  # the examples' small teacher of that type, trained here
        cfg["teacher"]["params"] = dict(small[0]["params"])
    cfg["student"], why = _student(t, teacher, student, d)
    facts.append(
        (
            f"student: {cfg['student']['model']}"
            + (f" {cfg['student'].get('params')}" if cfg["student"].get("params") else ""),
            why,
        )
    )
    if d.kind == "images" and cfg["student"]["model"] == "builtin:cnn":
        cfg["quantize"] = {"op_types": ["MatMul", "Gemm"]}
        facts.append(("quantize.op_types: [MatMul, Gemm]", "int8 convolutions are slower than fp32 ones on CPUs "
                      "without AVX-512 VNNI (benchmarks/README.md); quantize the dense layers only"))
    return cfg, facts


def _weights(path: str, t: TeacherFacts) -> str:
    """--teacher-weights, checked as far as init can without building the model (`kdpipe check` loads it):
    a readable checkpoint file, for a teacher that takes one."""
    if t.family == "pretrained":
        raise ConfigError("kdpipe init --teacher-weights: an hf: teacher brings its own weights in its folder")
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"kdpipe init --teacher-weights: {path}: no such file")
    if p.suffix.lower() not in (".safetensors", ".pt", ".pth"):
        raise ConfigError(f"kdpipe init --teacher-weights: {path}: a .safetensors, .pt or .pth checkpoint is expected")
    return str(p.resolve())


STEPS = 250  # optimizer steps a fine-tune needs at least: the text example's teacher took 234 to 87.8%
MAX_EPOCHS = 20


def _enough_steps(cfg: dict, rows: int, facts: list) -> None:
    """On small data, the family's few epochs are few steps: make each training at least STEPS steps.
    (1,068 labelled texts with 3 epochs of fine-tuning, 72 steps, left MiniLM's head at 54% on 13
    classes; benchmarks/README.md.)"""
    from kdpipe.config.defaults import with_family_defaults
    from kdpipe.config.schema import Config

    resolved = Config.model_validate(with_family_defaults(cfg))
    per_epoch = -(-int(rows * resolved.data.split[0]) // resolved.data.batch_size)
    need = min(MAX_EPOCHS, -(-STEPS // max(per_epoch, 1)))
    if cfg["teacher"].get("finetune") and need > resolved.teacher.train.epochs:
        cfg["teacher"]["train"] = {"epochs": need}
        facts.append((f"teacher.train.epochs: {need}", f"{per_epoch} steps an epoch on this data: at least {STEPS} "
                      "steps to fine-tune (the family's default epochs are for larger data)"))
    # a fixed count with the rate decayed to zero: on 1,068 texts it gave a student 4.7 points above
    # distill.epochs: auto, whose 106 validation texts picked the epoch to stop at (benchmarks/README.md)
    if need > resolved.distill.epochs_at_most:
        cfg["distill"] = {"epochs": need}
        facts.append((f"distill.epochs: {need}", f"{per_epoch} steps an epoch: at least {STEPS} steps for the student"))


def _small_models(teacher: str) -> tuple[dict, dict] | None:
    """The examples' (teacher, student) of this hf-config: type, where there is one."""
    from kdpipe.config.defaults import TASK_MODELS

    return next((m for m in TASK_MODELS.values() if m[0]["model"] == teacher), None)


def _name_of(source: str) -> str:
    stem = Path(source.partition(":")[2]).stem or "run"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "run"


def _student(t: TeacherFacts, teacher: str, student: str | None, d: DataFacts) -> tuple[dict, str]:
    if student:
        return {"model": student}, "given (--student)"
    if t.family == "pretrained":
        if t.layers:
            layers = list(range(0, t.layers, 2))
            return ({"model": "derive:teacher", "params": {"layers": layers}},
                    f"every other of the teacher's {t.layers} layers, weights copied from it (DistilBERT's recipe): "
                    f"{len(layers)} layers, about {len(layers) / t.layers:.0%} of its depth")
        return {"model": "derive:teacher", "params": {"layers": "every_other"}}, "every other layer of the teacher"
    if t.family == "config":
        small = _small_models(teacher)
        if small:
            return dict(
                small[1]
            ), f"the examples' half-depth {teacher.partition(':')[2]} (the teacher: {small[0]['params']})"
        return {"model": teacher}, "the same architecture (set student.params to make it smaller)"
    if teacher.startswith("builtin:cnn") or (d.kind == "images" and teacher.startswith("builtin:")):
        return ({"model": "builtin:cnn", "params": {"channels": [8, 32], "hidden": 128}},
                "a narrow CNN (the default example's student: a quarter of its teacher's parameters)")
    if teacher.startswith("builtin:"):
        return {"model": "builtin:mlp", "params": {"hidden": [64]}}, "a small MLP"
    raise ConfigError(f"--teacher {teacher}: init cannot derive a student from it; name one with --student "
                      "(builtin:mlp, builtin:cnn, python:module:factory, ...)")


def _sequence_length(texts: list[str], t: TeacherFacts) -> tuple[int, str]:
    """The 95th percentile of the texts' token counts, rounded up to a multiple of 16: most texts
    whole, and no step paying for padding that almost no text needs."""
    import numpy as np
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(t.tokenizer))
    tok.no_padding()
    tok.no_truncation()
    counts = np.array([len(e.ids) for e in tok.encode_batch(texts[:2000])]) if texts else np.array([128])
    p95 = float(np.percentile(counts, 95))
    cap = min(512, t.max_positions or 512)
    length = int(min(cap, max(16, -(-p95 // 16) * 16)))
    return length, (f"95% of {len(counts):,} texts have at most {p95:.0f} tokens (the teacher's tokenizer; longest "
                    f"{counts.max()}); longer texts are cut")


HEADER = """# Written by `kdpipe init` for this teacher and this data: the lines below are what init inferred,
# each with why. Everything else comes from the defaults of the model family ({family}); see them all,
# with where each came from, with `kdpipe show-config {path}`. The config reference: docs/configuration.md.
"""


def render(cfg: dict, facts: list[tuple[str, str]], path: Path) -> str:
    from kdpipe.config.defaults import family_of

    lines = [HEADER.format(family=family_of(cfg), path=path).rstrip(), "#"]
    lines += [f"# {what}: {why}" for what, why in facts]
    lines += ["", yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=110).rstrip()]
    return "\n".join(lines) + "\n"

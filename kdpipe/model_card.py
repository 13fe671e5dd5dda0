"""The bundle's model card: README.md with Hugging Face model-card front matter, so that a bundle
folder can be shared or pushed to a model hub as it is.

It says what the model is, how it was made (teacher, student, KD, pruning, quantization), its test
metric beside the teacher's, the quantized teacher's and the same student's without KD, and its
size and batch-1 latency beside the quantized teacher's, measured side by side on the machine named.
Only facts the stages recorded go in: nothing here measures except through what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kdpipe.io import atomic_write_bytes
from kdpipe.units import fmt_size

PIPELINE_TAGS = {"classification": "image-classification", "text-classification": "text-classification",
                 "embedding": "sentence-similarity", "causal-lm": "text-generation", "masked-lm": "fill-mask"}


@dataclass
class Row:
    name: str  # what a reader sees, e.g. "teacher (PyTorch)"
    metric: float | None
    size_bytes: int | None = None
    latency_ms: float | None = None  # batch 1, p50


@dataclass
class ModelCard:
    title: str
    task: str  # classification | text-classification | embedding | causal-lm | masked-lm
    variant: str
    precision: str  # fp32 | fp16 | int8
    metric_name: str
    metric_unit: str
    higher_is_better: bool
    made: list[str]  # how it was made, a line each
    rows: list[Row]  # this model first
    test_samples: int
    data_source: str
    machine: dict
    runtimes: dict
    files: list[str]
    labels: list[str] | None = None
    extra_limits: list[str] = field(default_factory=list)


def render(card: ModelCard) -> str:
    this = card.rows[0]
    front = {"library_name": "onnx", "pipeline_tag": PIPELINE_TAGS.get(card.task, card.task),
             "tags": ["kdpipe", "knowledge-distillation", "onnx", card.precision],
             "model-index": [{"name": card.title, "results": [{
                 "task": {"type": PIPELINE_TAGS.get(card.task, card.task)},
                 "dataset": {"name": card.data_source, "type": card.data_source, "split": "test"},
                 "metrics": [{"type": card.metric_name, "value": round(this.metric, 4),
                              "name": f"test {card.metric_name}"}]}]}]}
    unit = card.metric_unit
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {card.title}", "",
             f"A {card.task} model made by kdpipe (distill, prune, quantize, export): `{card.variant}`, "
             f"{fmt_size(this.size_bytes)}, {this.metric:.2f}{unit} test {card.metric_name}. It runs with onnxruntime alone; `kdpipe.json` beside it says how to feed it.", "",
             "## How it was made", ""]
    lines += [f"- {m}" for m in card.made]
    lines += ["", f"## Results (test split, {card.test_samples:,} samples never seen in training)", "",
              f"| model | test {card.metric_name} | size | batch-1 latency (p50) |", "|---|---:|---:|---:|"]
    for r in card.rows:
        metric = "-" if r.metric is None else f"{r.metric:.2f}{unit}"
        lat = "-" if r.latency_ms is None else f"{r.latency_ms:.3f} ms"
        lines.append(f"| {r.name} | {metric} | {fmt_size(r.size_bytes)} | {lat} |")
    m = card.machine
    lines += ["", f"Latency: onnxruntime {m.get('onnxruntime', '')} on the CPU, {m.get('threads')} thread(s), "
              f"measured side by side when the bundle was made, on {m.get('cpu')} (SIMD: "
              f"{', '.join(m.get('simd') or []) or 'none listed'}). int8 speed depends on the CPU: AVX-512 VNNI "
              "runs int8 much faster than AVX2 alone. The run's report has every variant on every provider.",
              "", "## Use", "", f"Files: {', '.join(f'`{f}`' for f in card.files)}. `kdpipe.json` names the input, "
              "its preprocessing (or the tokenizer and maximum length), the output and its meaning"
              + (f", and the {len(card.labels)} labels" if card.labels else "") + ".", "",
              "| runtime | runs | note |", "|---|---|---|"]
    for name, rt in card.runtimes.items():
        note = rt.get("note") or (f"version {rt['version']}" + (f"; operators not verified there: "
                                                                 f"{', '.join(rt['not_verified_ops'])}"
                                                                 if rt.get("not_verified_ops") else ""))
        lines.append(f"| {name} | {'yes' if rt['runs'] else 'not verified'} | {note} |")
    lines += ["", "## Intended use and limits", "",
              f"- Made for the task and data it was distilled on (`{card.data_source}`); scores on other data, "
              "another domain or another input distribution were not measured here and may be lower.",
              "- Figures are from one seed and one test split; the spread between seeds is not in this card.",
              "- A smaller model inherits its teacher's errors and biases and adds its own: check it on the cases "
              "that matter to you before relying on it."]
    lines += [f"- {x}" for x in card.extra_limits]
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path, card: ModelCard) -> Path:
    path = Path(folder) / "README.md"
    atomic_write_bytes(path, render(card).encode())
    return path

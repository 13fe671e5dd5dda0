"""The bundle's model card: README.md with Hugging Face model-card front matter, so that a bundle
folder can be shared or pushed to a model hub as it is.

It says what the model is, how it was made (teacher, student, KD, pruning, quantization) and what
each step bought (size, metric, speed), its test metric beside the teacher's, the quantized teacher's
and the same student's without KD, its size and batch-1 latency measured side by side on the machine
named, the inputs it expects (for images: size, range and which way round the data's contrast is),
how to run it, and its licence. Only facts the stages recorded or the bundle holds go in.
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
    chain: list[Row] = field(default_factory=list)  # teacher (ONNX fp32) ... this model: the steps it took
    inputs: list[str] = field(default_factory=list)  # what the model expects (input_conventions)
    license: str | None = None  # export.license
    sources: str = ""  # whose terms the licence must respect (teacher, data)


def render(card: ModelCard) -> str:
    this = card.rows[0]
    front = {**({"license": card.license} if card.license else {}),
             "library_name": "onnx", "pipeline_tag": PIPELINE_TAGS.get(card.task, card.task),
             "tags": ["kdpipe", "knowledge-distillation", "onnx", card.precision],
             "model-index": [{"name": card.title, "results": [{
                 "task": {"type": PIPELINE_TAGS.get(card.task, card.task)},
                 "dataset": {"name": card.data_source, "type": card.data_source, "split": "test"},
                 "metrics": [{"type": card.metric_name, "value": round(this.metric, 4),
                              "name": f"test {card.metric_name}"}]}]}]}
    unit = card.metric_unit
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {card.title}", "",
             f"A {card.task} model made by kdpipe (distill, prune, quantize, export): `{card.variant}`, "
             f"{fmt_size(this.size_bytes)}, {this.metric:.2f}{unit} test {card.metric_name}. It runs with "
             "onnxruntime alone; `kdpipe.json` beside it says how to feed it.", "",
             "## How it was made", ""]
    lines += [f"- {m}" for m in card.made]
    if len(card.chain) > 1:
        better = "higher" if card.higher_is_better else "lower"
        lines += ["", "## What each step bought", "", f"Each step against the one before it (ONNX, CPU, batch 1; test "
                  f"{card.metric_name}: after − before, {better} is better).", "",
                  "| step | size | x smaller | test " + card.metric_name + " | change | latency | x faster |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for a, b in zip(card.chain, card.chain[1:]):
            lines.append(f"| {a.name} → {b.name} | {fmt_size(a.size_bytes)} → {fmt_size(b.size_bytes)} | "
                         f"{_x(a.size_bytes, b.size_bytes)} | {a.metric:.2f} → {b.metric:.2f}{unit} | "
                         f"{_change(a.metric, b.metric)} | "
                         f"{_ms(a.latency_ms)} → {_ms(b.latency_ms)} | {_x(a.latency_ms, b.latency_ms)} |")
        a, b = card.chain[0], card.chain[-1]
        if len(card.chain) > 2:
            lines.append(f"| **all: {a.name} → {b.name}** | {fmt_size(a.size_bytes)} → {fmt_size(b.size_bytes)} | "
                         f"**{_x(a.size_bytes, b.size_bytes)}** | {a.metric:.2f} → {b.metric:.2f}{unit} | "
                         f"**{_change(a.metric, b.metric)}** | {_ms(a.latency_ms)} → {_ms(b.latency_ms)} | "
                         f"**{_x(a.latency_ms, b.latency_ms)}** |")
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
              "", "## Inputs", ""] + [f"- {x}" for x in card.inputs] + [
              "", "## Use", "", f"Files: {', '.join(f'`{f}`' for f in card.files)}. `kdpipe.json` names the input, "
              "its preprocessing (or the tokenizer and maximum length), the output and its meaning"
              + (f", and the {len(card.labels)} labels" if card.labels else "") + ". In Python, with onnxruntime"
              + (" and tokenizers" if _is_text(card) else "") + " alone:", "", "```python", usage(card), "```", "",
              "From the command line: `kdpipe predict . " + ("texts.txt" if _is_text(card) else "samples.npz")
              + " --json` (in this folder); in Node.js: `node apps/node/classify.mjs BUNDLE_FOLDER "
              + ("texts.txt" if _is_text(card) else "samples.json") + "` from kdpipe's repository.", "",
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
    lines += ["", "## Licence", "", (f"`{card.license}` (export.license)." if card.license else
                                     "Not stated (set export.license).") + f" The model derives from {card.sources}: "
              "their terms bind it whatever this field says. kdpipe, which made it, is Apache-2.0."]
    return "\n".join(lines) + "\n"


def _change(before: float, after: float) -> str:
    """after - before with its sign, never "-0.00" (a change that rounds to nothing is +0.00)."""
    return f"{round(after - before, 2) + 0.0:+.2f}"


def _x(before, after) -> str:
    return f"{before / after:.2f}x" if before and after else "-"


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def _is_text(card: ModelCard) -> bool:
    return card.task in ("text-classification", "embedding", "causal-lm", "masked-lm")


def usage(card: ModelCard) -> str:
    """A runnable snippet for the bundle's task: plain onnxruntime (and tokenizers for text)."""
    head = ["import json", "import numpy as np", "import onnxruntime as ort"]
    load = ['info = json.load(open("kdpipe.json"))',
            'session = ort.InferenceSession(info["model"], providers=["CPUExecutionProvider"])']
    if not _is_text(card):
        return "\n".join(head + [""] + load + [
            "",
            "def predict(raw):  # raw: (N, *input shape) as the data gave it, before preprocessing",
            '    pre = info["preprocessing"]',
            '    x = ((np.asarray(raw, np.float32) * pre["scale"] - pre["mean"]) / pre["std"]).astype(np.float32)',
            '    logits = session.run(None, {info["input"]["name"]: x})[0]',
            "    p = np.exp(logits - logits.max(1, keepdims=True))",
            "    p /= p.sum(1, keepdims=True)",
            '    return [(info["labels"][i], float(p[n, i])) for n, i in enumerate(p.argmax(1))]'])
    if card.task == "causal-lm":
        return "\n".join(head + ["from tokenizers import Tokenizer", ""] + load + _CACHED_LOOP)
    last = {
        "text-classification": ['scores = run("your text here")', 'label = info["labels"][int(scores.argmax())]'],
        "embedding": ['vector = run("your text here")  # the sentence embedding'],
        "masked-lm": [
            'mask = "[MASK]"  # the tokenizer\'s mask token',
            'text = f"The capital of France is {mask}."',
            "logits, ids = run(text), tokenizer.encode(text).ids",
            "filled = [int(logits[i].argmax()) if t == tokenizer.token_to_id(mask) else t for i, t in enumerate(ids)]",
            "print(tokenizer.decode(filled))",
        ],
    }[card.task]
    return "\n".join(head + ["from tokenizers import Tokenizer", ""] + load + [
        'tokenizer = Tokenizer.from_file(info["tokenizer"])',
        'tokenizer.enable_truncation(info["max_sequence_length"])',
        "tokenizer.no_padding()  # one text at a time: the attention mask is all ones",
        "",
        "def run(text):",
        "    ids = np.array([tokenizer.encode(text).ids], np.int64)",
        '    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}',
        "    return session.run(None, {i.name: feeds.get(i.name, np.zeros_like(ids)) for i in "
        "session.get_inputs()})[0][0]",
        ""] + last)


# a causal-LM bundle: the prompt with an empty past, then one token a call with the KV cache it returned
_CACHED_LOOP = [
    'tokenizer = Tokenizer.from_file(info["tokenizer"])',
    'kv = info["kv_cache"]',
    "names = [i.name for i in session.get_inputs()]",
    "outputs = [o.name for o in session.get_outputs()]",
    "",
    "def generate(prompt, max_new_tokens=20):  # greedy; sample from softmax(logits / T) for variety",
    "    ids = tokenizer.encode(prompt, add_special_tokens=False).ids",
    '    past = {n: np.zeros((1, kv["heads"], 0, kv["head_size"]), np.float32)',
    '            for n in names if n.startswith("past_")}',
    "    new, done, made = ids, 0, []",
    "    for _ in range(max_new_tokens):",
    '        feeds = {"input_ids": np.array([new], np.int64), "attention_mask": np.ones((1, done + len(new)), '
    "np.int64),",
    '                 "position_ids": np.arange(done, done + len(new), dtype=np.int64)[None], **past}',
    "        got = dict(zip(outputs, session.run(None, {n: feeds[n] for n in names})))",
    '        past = {n: got["present." + n[len("past_key_values."):]] for n in past}',
    "        done += len(new)",
    '        token = int(got["logits"][0, -1].argmax())',
    "        made.append(token)",
    '        if token == kv["eos_token_id"]:',
    "            break",
    "        new = [token]",
    "    return tokenizer.decode(made)",
    "",
    'print(generate("your text here"))',
]


def input_conventions(info: dict, train_raw=None) -> list[str]:
    """What the model expects, read off its kdpipe.json, and for images which way round the training
    data's contrast is (a digit drawn dark on light, fed to a model trained on light on dark, gives
    confident wrong answers). `train_raw`: training inputs before preprocessing, or None."""
    if "tokenizer" in info:
        return [f"Text, tokenized by `{info['tokenizer']}` (in this folder); cut after "
                f"{info.get('max_sequence_length')} "
                f"tokens (trained on {info.get('trained_sequence_length', info.get('max_sequence_length'))}); inputs "
                f"{', '.join(info.get('inputs', []))}; batches padded {info.get('padding', 'on the right')}."]
    pre = info.get("preprocessing") or {}
    shape = pre.get("input_shape") or []
    scale = pre.get("scale", 1.0)
    top = 1.0 / scale if scale else None
    out = []
    if len(shape) == 3 and min(shape[1:]) >= 8:
        c, h, w = shape
        out.append(f"Images of {w}x{h} pixels, {c} channel{'s' if c > 1 else ''} "
                   f"({'greyscale' if c == 1 else 'RGB' if c == 3 else 'channels first'}), "
                   f"layout NCHW, pixel values 0 to {top:g} before the preprocessing `{pre.get('formula')}` (scale "
                   f"{scale:g}, mean {pre.get('mean'):.4g}, std {pre.get('std'):.4g}); `kdpipe predict` resizes and "
                   "converts other images with a note.")
        if train_raw is not None and top:
            import numpy as np

            x = np.asarray(train_raw, np.float64).reshape(len(train_raw), c, h, w)
            border = np.concatenate(
                [x[:, :, 0].ravel(), x[:, :, -1].ravel(), x[:, :, :, 0].ravel(), x[:, :, :, -1].ravel()]
            )
            # shares of full brightness, clipped: undoing the preprocessing leaves a black pixel a rounding
            # below zero, which would print as "-0%"
            bg, mean = (min(max(float(v) / top, 0.0), 1.0) for v in (np.median(border), x.mean()))
            if bg <= 0.25 and mean < 0.5:
                out.append(f"Light on a dark background: in the training images the border is {bg:.0%} of full "
                           f"brightness and the average pixel {mean:.0%}. Invert an image drawn dark on light "
                           f"({top:g} - pixel) before feeding it, or the model answers confidently and wrongly.")
            elif bg >= 0.75 and mean > 0.5:
                out.append(f"Dark on a light background: in the training images the border is {bg:.0%} of full "
                           f"brightness and the average pixel {mean:.0%}. Invert an image drawn light on dark first.")
    elif shape:
        names = pre.get("feature_names")
        out.append(f"{shape[-1]} features a sample" + (f", in this order: {', '.join(map(str, names[:20]))}"
                                                        + (" ..." if len(names) > 20 else "") if names else "")
                   + f"; values as the data gave them, before `{pre.get('formula')}` (scale {scale:g}, mean "
                   f"{pre.get('mean'):.4g}, std {pre.get('std'):.4g}).")
    if info.get("labels"):
        out.append(f"Output: {len(info['labels'])} class scores (logits) in the order of `labels` in kdpipe.json; "
                   "softmax gives probabilities.")
    return out


def write_model_card(folder: Path, card: ModelCard) -> Path:
    path = Path(folder) / "README.md"
    atomic_write_bytes(path, render(card).encode())
    return path

"""The report for people: the terminal table, report.md and report.html, all made from the same
sections (the stage-by-stage table first, then the variants, findings, data splits, parity, the
quantized graphs, generation speed of causal LMs, latency by sequence length, node placement and stage
times), so the HTML holds all
that the Markdown holds."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from kdpipe.report.build import notes, table_columns
from kdpipe.report.generation import generation_table
from kdpipe.report.stage_steps import steps_table


@dataclass
class Section:
    title: str
    head: list[str] = field(default_factory=list)
    body: list[list[str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # paragraphs before the table
    items: list[str] = field(default_factory=list)  # a bullet list after it
    left: int = 1  # columns aligned left (names); the rest are figures


def sections(report: dict) -> list[Section]:
    out = []
    steps = steps_table(report)
    if steps:
        out.append(Section("What each stage bought and cost", *steps, text=[
            "Each step against the one before it: ONNX on onnxruntime, CPU, the smallest batch; the teacher's row in "
            "the variant table below is the same teacher in PyTorch. The bundle row is the export stage's choice "
            "against the end of the chain (a step back when a smaller model was not shown within export.max_drop)."],
            left=2))
    head, body = table_columns(report)
    out.append(Section("Variants", head, body, left=2))
    out.append(Section("Findings", items=notes(report)))
    out += _splits(report.get("splits") or {})
    parity = [[r["variant"], f"{r['parity']['max_abs_diff']:.2e}", f"{r['parity']['agreement']:.2f}%"]
              for r in report["rows"] if "parity" in r]
    if parity:
        out.append(Section("Export parity (ONNX fp32 vs torch, validation split)",
                           ["variant", "max abs diff", "prediction agreement"], parity))
    out += _quantized(report) + _generation(report) + _by_length(report) + _placement(report)
    out.append(Section("Stages", ["stage", "seconds", "peak memory of the process so far (MiB)"],
                       [[s["stage"] + (" (sum)" if s["stage"] == "all" else ""), _or_dash(s.get("seconds")),
                         _or_dash(s.get("peak_rss_mb"))] for s in report.get("stages") or []]))
    return out


def _splits(splits: dict) -> list[Section]:
    sizes, per_class = splits.get("samples"), splits.get("per_class")
    if not sizes:
        return []
    names = ["train", "val", "test"]
    body = [["samples"] + [f"{sizes[n]:,}" for n in names]]
    for label in (per_class or {}).get("train", {}):
        body.append([f"class {label}"] + [f"{per_class[n].get(label, 0):,}" for n in names])
    if (per_class or {}).get("train_unlabelled"):
        body.append(
            [
                "train inputs without a label (data.label_fraction; KD only)",
                f"{per_class['train_unlabelled']:,}",
                "",
                "",
            ]
        )
        if splits.get("teacher_labels"):
            body.append(
                ["training labels the teacher learnt from (teacher.labels)", f"{splits['teacher_labels']:,}", "", ""]
            )
    return [Section("Data splits", [""] + names, body)]


def _quantized(report: dict) -> list[Section]:
    q = [r for r in report["rows"] if "quantization" in r]
    if not q:
        return []
    body = []
    for r in q:
        qi = r["quantization"]
        ops = ", ".join(f"{k} {v}" for k, v in sorted(qi["ops"].items()))
        method = qi["method"] + (" (from the fused graph)" if qi.get("fused") else "")
        if qi.get("fusions"):
            method += ": " + ", ".join(f"{k} {v}" for k, v in qi["fusions"].items())
        bits = ("4" if r["format"] == "onnx-int4" else "-" if r["format"] != "onnx-int8" else
                "7" if qi.get("reduce_range") else "8")
        body.append([r["variant"], method, qi["calibration"] or "-", str(qi["per_channel"]), bits, ops])
    return [
        Section(
            "Quantized graphs",
            ["variant", "method", "calibration", "per-channel", "weight bits", "ops"],
            body,
            text=[
                "int8 weights in 7 bits cannot overflow the 16-bit sums of x86 CPUs without VNNI; 8-bit ones "
                "are more precise but can give other outputs on such CPUs (`quantize.reduce_range`)."
            ],
            left=6,
        )
    ]


def _generation(report: dict) -> list[Section]:
    table = generation_table(report)
    if not table:
        return []
    g = report["generation"]
    return [Section("Generation (greedy, batch 1, 1 CPU thread)", *table, left=2, text=[
        f"A {g['prompt_tokens']}-token test prompt, then {g['new_tokens']} new tokens, every model side by side in "
        f"{g['rounds']} rounds (medians). First token: the prompt's call with the cache. Decode: tokens per second "
        "after the first, one call a token with the KV cache, or the whole sequence again each token (prefix "
        "rerun, what a graph without a cache costs). The PyTorch teacher runs transformers with its own cache."])]


def _by_length(report: dict) -> list[Section]:
    by_len = [(r, p, r["latency"][p]["by_sequence_length"]) for r in report["rows"] for p in report["providers"]
              if r["latency"][p].get("by_sequence_length")]
    if not by_len:
        return []
    lengths = sorted({int(n) for _, _, d in by_len for n in d})
    batches = sorted({int(b) for _, _, d in by_len for v in d.values() for b in v})
    body = [
        [f"{r['variant']} ({r['format']})", p]
        + [
            f"{d[str(n)][str(b)]['p50_ms']:.3f}" if str(b) in d.get(str(n), {}) else "-"
            for n in lengths
            for b in batches
        ]
        for r, p, d in by_len
    ]
    return [Section("Latency by sequence length (p50 ms per call)",
                    ["variant", "provider"] + [f"seq {n} b{b}" for n in lengths for b in batches], body, left=2)]


def _placement(report: dict) -> list[Section]:
    placed = [(r, p, r["latency"][p]["placement"]) for r in report["rows"] for p in report["providers"]
              if r["latency"][p].get("placement")]
    if not placed:
        return []
    body = [
        [
            f"{r['variant']} ({r['format']})",
            p,
            "; ".join(
                f"{ep}: " + ", ".join(f"{op} {n}" for op, n in sorted(c.items()))
                for ep, c in pl["ops_by_provider"].items()
            ),
            str(pl["memcpy_nodes"]),
        ]
        for r, p, pl in placed
    ]
    return [Section("Where the nodes ran (one profiled run per session)",
                    ["variant", "session provider", "ops per execution provider", "Memcpy nodes"], body, left=3)]


def _or_dash(v) -> str:
    return "-" if v is None else str(v)


def render_terminal(report: dict, console=None) -> None:
    """The stage-by-stage table, the variant table and the findings (the rest is in report.md/html)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # plain text: "kdpipe[gpu]" must not be read as markup

    parts = {s.title: s for s in sections(report)}
    widest = max(len(s.head) for s in parts.values())
    # Wide enough for every column even when stdout is not a terminal (rich would assume 80).
    console = console or Console(width=max(Console().width, 40 + 14 * widest))
    for title in ("What each stage bought and cost", "Variants"):
        s = parts.get(title)
        if s is None:
            continue
        table = Table(title=Text(f"kdpipe report: {report['name']}: {title.lower()}"), show_lines=False)
        for i, h in enumerate(s.head):
            table.add_column(h, justify="left" if i < s.left else "right", overflow="fold")
        for line in s.body:
            table.add_row(*(Text(c) for c in line))
        console.print(table)
    for n in parts["Findings"].items:
        console.print(Text(f"- {n}"), soft_wrap=True)


def render_markdown(report: dict) -> str:
    lines = [f"# kdpipe report: {report['name']}", "", f"Created {report['created']}, seed {report['seed']}."]
    for s in sections(report):
        lines += ["", f"## {s.title}", ""]
        for t in s.text:
            lines += [t, ""]
        if s.head:
            lines += ["| " + " | ".join(s.head) + " |",
                      "|" + "|".join(["---"] * s.left + ["---:"] * (len(s.head) - s.left)) + "|"]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in s.body]
        lines += [f"- {n}" for n in s.items]
    return "\n".join(lines) + "\n"


def render_html(report: dict, plots: dict[str, str]) -> str:
    esc = html.escape
    parts = []
    for s in sections(report):
        parts.append(f"<h2>{esc(s.title)}</h2>" + "".join(f"<p>{esc(t)}</p>" for t in s.text))
        if s.head:
            cells = lambda row, tag: "".join(  # noqa: E731
                f'<{tag} class="{"name" if i < s.left else "num"}">{esc(c)}</{tag}>' for i, c in enumerate(row))
            parts.append(f"<table><tr>{cells(s.head, 'th')}</tr>"
                         + "".join(f"<tr{' class=bundle' if '(bundle)' in row[0] else ''}>{cells(row, 'td')}</tr>"
                                   for row in s.body) + "</table>")
        if s.items:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in s.items) + "</ul>")
        if s.title == "Findings" and plots:
            parts.append("<h2>Plots</h2>" + "".join(
                f'<figure><img alt="{esc(k)}" '
                f'src="data:image/png;base64,{v}"><figcaption>{esc(k)}</figcaption></figure>'
                for k, v in plots.items()))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>kdpipe report: {esc(str(report['name']))}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 8px}}.num{{text-align:right}}.name{{text-align:left}}
th{{background:#f3f3f3}}tr.bundle td{{background:#fff6d5;font-weight:600}}figure{{display:inline-block;margin:1em}}
img{{max-width:640px}}</style></head><body>
<h1>kdpipe report: {esc(str(report['name']))}</h1><p>Created {esc(report['created'])}, seed {report['seed']}.</p>
{''.join(parts)}</body></html>
"""

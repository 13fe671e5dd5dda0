"""Report plots: the task's metric against file size and against latency, one point per variant, with
the Pareto frontier of the ONNX variants drawn as a dashed line. A variant looks the same in every
chart: its colour is the model it comes from (teacher, baseline, student, pruned), its marker the
format or quantization (torch, fp32, int8 dynamic, int8 static, fp16); the legend lists those two
short groups, not every variant, and the bundle is ringed and named."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from kdpipe.report.frontier import cost_of
from kdpipe.variants import bundle_label

COLOURS = {"teacher": "#1f77b4", "baseline": "#7f7f7f", "student": "#2ca02c", "pruned": "#d62728"}
MARKERS = {"torch": ("o", "PyTorch"), "fp32": ("s", "ONNX fp32"), "fused": ("P", "ONNX fp32 fused"),
           "dynamic": ("^", "int8 dynamic"), "static": ("v", "int8 static"), "mixed": ("D", "int8 mixed"),
           "fp16": ("X", "fp16"), "int4": ("*", "int4 weight-only")}


def style(row: dict) -> tuple[str, str]:
    """(colour, marker key) of a variant: the same in every chart."""
    model = row.get("source") or row["variant"].split("-")[0]
    name = row["variant"]
    kind = ("torch" if row["format"] == "torch" else "mixed" if name.endswith("-mixed") else
            "fused" if row["format"] == "onnx-fp32" and "fused" in name else "fp32" if row["format"] == "onnx-fp32"
            else "fp16" if row["format"] == "onnx-fp16" else "int4" if row["format"] == "onnx-int4"
            else "static" if "static" in name else "dynamic")
    return COLOURS.get(model, "#9467bd"), kind


def make_plots(report: dict, folder: Path) -> dict[str, str]:
    """Writes PNGs into `folder`; returns {caption: base64 PNG} for the HTML report."""
    # Figure objects, not pyplot: no global figure state or GUI backend, and a third less import time
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = report["rows"]
    b = min(report["batch_sizes"])
    bundle = (report.get("bundle") or {}).get("variant")
    out = {}
    specs = [
        ("accuracy_vs_size", "size", "size (KB, log scale)", lambda r: r["size_bytes"] / 1024),
        ("accuracy_vs_latency", "latency", f"CPU latency p50 at batch {b} (ms, log scale)", cost_of(report, "latency")),
    ]
    if report.get("generation"):  # causal LMs: what an app generating text sees
        speed = {(m["variant"], m["format"]): m["cached"]["decode_tokens_per_s"]
                 for m in report["generation"]["models"] if m.get("cached")}
        specs.append(("accuracy_vs_decode_speed", "decode", "decode tokens/s with the KV cache, batch 1, 1 thread "
                      "(log scale; right is faster)", lambda r: speed.get((r["variant"], r["format"]))))
    m = report["metric"]
    for name, kind, xlabel, getx in specs:
        pts = [(getx(r), r["metric"]["value"], r) for r in rows if getx(r)]
        if not pts:
            continue
        fig = Figure(figsize=(9, 4.5), dpi=100)
        ax = fig.subplots()
        for x, y, r in pts:
            colour, k = style(r)
            ax.scatter(x, y, marker=MARKERS[k][0], s=46, color=colour, edgecolors="black", linewidths=0.4, zorder=3)
            if bundle and r["format"] != "torch" and bundle in (r["variant"], bundle_label(r)):
                ax.scatter(x, y, marker="o", s=260, facecolors="none", edgecolors="#e8a700", linewidths=2, zorder=2)
                ax.annotate(
                    f"bundle: {bundle_label(r)}", (x, y), xytext=(8, 10), textcoords="offset points", fontsize=8
                )
        on = set((report.get("frontier") or {}).get(kind, []))
        edge = sorted((getx(r), r["metric"]["value"]) for r in rows
                      if r["format"].startswith("onnx") and bundle_label(r) in on and getx(r))
        if len(edge) > 1:
            ax.plot(*zip(*edge), linestyle="--", color="grey", linewidth=1, zorder=1)
        ax.set_xscale("log")
        # ticks at 1, 2 and 5 of each decade, written plainly (0.05, 0.1, 0.2 ms): no 10^-2 notation
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        used = {style(r) for _, _, r in pts}
        models = [Line2D([], [], marker="o", linestyle="", color=c, label=mdl) for mdl, c in COLOURS.items()
                  if any(u[0] == c for u in used)]
        kinds = [Line2D([], [], marker=MARKERS[k][0], linestyle="", color="black", markerfacecolor="white",
                        label=MARKERS[k][1]) for k in MARKERS if any(u[1] == k for u in used)]
        extra = [Line2D([], [], linestyle="--", color="grey", label="Pareto frontier (ONNX)")] if len(edge) > 1 else []
        ax.legend(handles=models + kinds + extra, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  title="model / format", title_fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {m['name']}" + (f" ({m['unit']})" if m["unit"] else "") +
                      ("" if m["higher_is_better"] else ", lower is better"))
        ax.grid(True, alpha=0.3)
        ax.set_title(name.replace("_", " "))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        (folder / f"{name}.png").write_bytes(buf.getvalue())
        out[name.replace("_", " ")] = base64.b64encode(buf.getvalue()).decode()
    return out

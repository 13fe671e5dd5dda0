"""Report plots: the task's metric against file size and against latency, one point per variant, with
the Pareto frontier of the ONNX variants drawn as a dashed line."""

from __future__ import annotations

import base64
import io
from pathlib import Path


def make_plots(report: dict, folder: Path) -> dict[str, str]:
    """Writes PNGs into `folder`; returns {caption: base64 PNG} for the HTML report."""
    # Figure objects, not pyplot: no global figure state or GUI backend, and a third less import time
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = report["rows"]
    b = min(report["batch_sizes"])
    out = {}
    from kdpipe.pipeline.frontier import cost_of
    from kdpipe.variants import bundle_label

    specs = [
        ("accuracy_vs_size", "size", "size (KB, log scale)", lambda r: r["size_bytes"] / 1024),
        ("accuracy_vs_latency", "latency", f"CPU latency p50 at batch {b} (ms, log scale)", cost_of(report, "latency")),
    ]
    for name, kind, xlabel, getx in specs:
        pts = [(getx(r), r["metric"]["value"], f"{r['variant']} ({r['format']})") for r in rows]
        pts = [p for p in pts if p[0]]
        if not pts:
            continue
        fig = Figure(figsize=(9, 4.5), dpi=100)
        ax = fig.subplots()
        markers = "osD^v<>pP*Xh"
        for i, (x, y, name_) in enumerate(pts):  # a legend, not annotations: close points would overlap
            ax.scatter(x, y, marker=markers[i % len(markers)], s=40, label=name_)
        on = set((report.get("frontier") or {}).get(kind, []))
        edge = sorted((getx(r), r["metric"]["value"]) for r in rows
                      if r["format"].startswith("onnx") and bundle_label(r) in on and getx(r))
        if len(edge) > 1:
            ax.plot(*zip(*edge), linestyle="--", color="grey", linewidth=1, zorder=0, label="Pareto frontier (ONNX)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.set_xlabel(xlabel)
        m = report["metric"]
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

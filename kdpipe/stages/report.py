"""report: report.json, report.md and report.html (with plots) from what every stage recorded."""

from __future__ import annotations

from kdpipe.io import atomic_write_bytes, atomic_write_json
from kdpipe.report.build import build_report
from kdpipe.report.plots import make_plots
from kdpipe.report.render import render_html, render_markdown

NAME = "report"
REQUIRES = ("distill", "prune", "quantize", "export", "benchmark")
SECTIONS = ("name",)


def run(ctx) -> dict:
    bc = ctx.cfg.benchmark
    report = build_report(ctx.store.manifest(), list(bc.providers), list(bc.batch_sizes), ctx.evidence)
    atomic_write_json(ctx.out / "report.json", report)
    atomic_write_bytes(ctx.out / "report.md", render_markdown(report).encode())
    atomic_write_bytes(ctx.out / "report.html", render_html(report, make_plots(report, ctx.out)).encode())
    return {"files": [f"{NAME}/report.json", f"{NAME}/report.md", f"{NAME}/report.html"]}

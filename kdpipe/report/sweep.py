"""The sweep's report: each point's recorded results joined into one table per student size and
label fraction (KD and no-KD, mean and spread over seeds), the share of the no-KD-to-teacher gap KD
closes, the smallest student within `sweep.within` of the teacher, and plots. Nothing is measured
here: every figure comes from the points' manifests."""

from __future__ import annotations

import base64
import html
import io
import json
import statistics
from pathlib import Path

import numpy as np

from kdpipe.io import atomic_write_bytes, atomic_write_json
from kdpipe.progress import say
from kdpipe.run.store import MANIFEST
from kdpipe.tasks import task_for
from kdpipe.units import fmt_size


def collect(point, pcfg) -> dict:
    """One point's figures, from its run folder's manifest."""
    stages = json.loads((pcfg.run_dir() / MANIFEST).read_text())["stages"]
    torch_rows = {r["variant"]: r for r in stages["distill"]["outputs"]["variants"]}
    onnx = {r["variant"]: r for r in stages["export"]["outputs"]["variants"]}
    bench = {(r["variant"], r["format"]): r for r in stages["benchmark"]["outputs"]["results"]}
    student_b1 = bench.get(("student", "onnx-fp32"), {}).get("batches", {}).get("1", {})
    evidence = {role: str(pcfg.run_dir() / torch_rows[name]["evidence"])
                for role, name in (("teacher", "teacher"), ("kd", "student"), ("no_kd", "baseline"))
                if torch_rows.get(name, {}).get("evidence")}
    return {"point": point.name, "student": point.student, "seed": point.seed, "label_fraction": point.fraction,
            "params": torch_rows["student"]["params"], "size_bytes": onnx["student"]["size_bytes"],
            "latency_ms": student_b1.get("p50_ms"), "teacher": torch_rows["teacher"]["metric"]["test"],
            "teacher_params": torch_rows["teacher"]["params"],
            "kd": torch_rows["student"]["metric"]["test"], "no_kd": torch_rows["baseline"]["metric"]["test"],
            "kd_val": torch_rows["student"]["metric"]["val"], "no_kd_val": torch_rows["baseline"]["metric"]["val"],
            "seconds": sum(s["seconds"] for s in stages.values()), "evidence": evidence}


def paired_over_seeds(metric, rs: list[dict], key: str, reference: str = "teacher") -> dict | None:
    """How much worse than `reference` (the teacher; "kd" for what KD bought) a student size is on the
    test split, every seed's test samples paired with the reference's on the same samples (every point
    shares the teacher and the split): the drop of the pooled samples and its 95% interval. None where
    a point kept no evidence."""
    from kdpipe.evaluation.evidence import Samples, load, paired_drop

    if not all({reference, key} <= set(r.get("evidence", {})) for r in rs):
        return None
    teacher = [load(r["evidence"][reference])["test"] for r in rs]
    student = [load(r["evidence"][key])["test"] for r in rs]

    def pool(parts):
        return Samples(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("num", "den", "kept")))

    return paired_drop(metric, pool(teacher), pool(student))


def summarise(cfg, results: list[dict]) -> dict:
    metric = task_for(cfg).metric
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["student"], r["label_fraction"]), []).append(r)
    teacher = statistics.mean(r["teacher"] for r in results)
    table = []
    for (student, fraction), rs in groups.items():
        kd, no_kd = [r["kd"] for r in rs], [r["no_kd"] for r in rs]
        row = {"student": student, "label_fraction": fraction, "params": rs[0]["params"],
               "size_bytes": rs[0]["size_bytes"], "latency_ms": _median([r["latency_ms"] for r in rs]),
               "seeds": len(rs), "kd_mean": statistics.mean(kd), "kd_sd": _sd(kd),
               "no_kd_mean": statistics.mean(no_kd), "no_kd_sd": _sd(no_kd),
               "kd_wins": sum(metric.worse_by(a, b) > 0 for a, b in zip(kd, no_kd)),
               "kd_vs_teacher": paired_over_seeds(metric, rs, "kd"),
               # what KD bought: the no-KD student's drop against the KD student, seeds pooled
               "kd_gain_paired": paired_over_seeds(metric, rs, "no_kd", reference="kd"),
               "no_kd_vs_teacher": paired_over_seeds(metric, rs, "no_kd")}
        row["kd_gain"] = metric.worse_by(row["kd_mean"], row["no_kd_mean"])  # > 0: KD is better
        gap = metric.worse_by(teacher, row["no_kd_mean"])
        row["gap_closed_pct"] = 100.0 * row["kd_gain"] / gap if gap > 0 else None
        table.append(row)
    table.sort(key=lambda r: (r["label_fraction"], r["params"]))
    within = cfg.sweep.within
    full = [r for r in table if r["label_fraction"] == max(cfg.sweep.label_fractions)]

    def smallest(key):
        """Shown within: the paired 95% upper bound of its drop against the teacher (pooled over seeds)
        at most `within`; rows recorded without evidence fall back on the mean."""
        def ok(r):
            vs = r[key.replace("_mean", "_vs_teacher")]
            return vs["ci"][1] <= within if vs else metric.worse_by(teacher, r[key]) <= within

        shown = [r for r in full if ok(r)]
        return min(shown, key=lambda r: r["params"])["student"] if shown else None

    return {"metric": {"name": metric.name, "unit": metric.unit, "higher_is_better": metric.higher_is_better},
            "teacher": {"metric": teacher, "params": results[0]["teacher_params"]}, "within": within,
            "smallest_within": {"kd": smallest("kd_mean"), "no_kd": smallest("no_kd_mean")},
            "table": table, "points": results, "seeds": cfg.sweep.seeds,
            "label_fractions": cfg.sweep.label_fractions}


def findings(s: dict) -> list[str]:
    u, name = s["metric"]["unit"], s["metric"]["name"]
    units = ("point" if s["within"] == 1 else "points") if u == "%" else name
    seeds = f"{len(s['seeds'])} seed" + ("s" if len(s["seeds"]) > 1 else "")
    out = [f"Teacher: {s['teacher']['metric']:.2f}{u} test {name}, {s['teacher']['params']:,} parameters; every "
           f"point shares it and the test split (mean and spread are over {seeds})."]
    for fraction in sorted(s["label_fractions"], reverse=True):
        rows = [r for r in s["table"] if r["label_fraction"] == fraction]
        at = f" with {fraction:.0%} of the labels" if len(s["label_fractions"]) > 1 else ""
        if all(r.get("kd_gain_paired") for r in rows):  # paired evidence: the interval decides
            by = {"shown": [], "apart": [], "behind": []}
            for r in rows:
                lo, hi = r["kd_gain_paired"]["ci"]
                by["shown" if lo > 0 else "behind" if hi < 0 else "apart"].append(
                    f"{r['student']} ({r['kd_gain_paired']['drop']:+.2f}, 95% {lo:+.2f} to {hi:+.2f})")
            out.append(f"KD shown ahead of the same student without KD{at} (paired 95% interval over the seeds' "
                       f"pooled test samples above 0): {', '.join(by['shown']) or 'none'}"
                       + (f"; cannot be told apart: {', '.join(by['apart'])}" if by["apart"] else "")
                       + (f"; behind: {', '.join(by['behind'])}" if by["behind"] else "") + ".")
            continue
        pays = [r["student"] for r in rows if r["kd_gain"] > 0 and r["kd_wins"] * 2 > r["seeds"]]
        not_pays = [r["student"] for r in rows if r["student"] not in pays]
        out.append(f"KD ahead of the same student without KD{at} (mean, and on most seeds; no per-sample evidence "
                   f"kept): {', '.join(pays) or 'none'}" + (f"; not at: {', '.join(not_pays)}" if not_pays else "")
                   + ".")
    for key, label in (("kd", "with KD"), ("no_kd", "without KD")):
        best = s["smallest_within"][key]
        out.append(f"Smallest student shown within {s['within']:g} {units} of the teacher {label} (paired 95% upper "
                   f"bound on the test samples, seeds pooled): {best or 'none'}.")
    return out


def render_markdown(cfg, s: dict) -> str:
    u = s["metric"]["unit"]
    lines = [f"# kdpipe sweep: {cfg.name}", "", f"Test {s['metric']['name']} of each student size with and without "
             "KD, mean ± standard deviation over seeds; latency: the fp32 student in onnxruntime, batch 1, one "
             "thread.", "", "| student | labels | params | size | latency ms | KD | no KD | KD gain | gap closed | "
             "KD wins |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["table"]:
        closed = "-" if r["gap_closed_pct"] is None else f"{r['gap_closed_pct']:.0f}%"
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.3f}"
        lines.append(f"| {r['student']} | {r['label_fraction']:.0%} | {r['params']:,} | {fmt_size(r['size_bytes'])} | "
                     f"{lat} | {r['kd_mean']:.2f} ± {r['kd_sd']:.2f}{u} | {r['no_kd_mean']:.2f} ± "
                     f"{r['no_kd_sd']:.2f}{u} "
                     f"| {r['kd_gain']:+.2f} | {closed} | {r['kd_wins']}/{r['seeds']} |")
    lines += ["", "Gap closed: the share of the no-KD student's distance to the teacher that KD removes.", "",
              "## Findings", ""] + [f"- {f}" for f in findings(s)]
    return "\n".join(lines) + "\n"


def plots(s: dict, folder: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = s["metric"]
    ylabel = f"test {m['name']}" + (f" ({m['unit']})" if m["unit"] else "")
    full = [r for r in s["table"] if r["label_fraction"] == max(s["label_fractions"])]
    out = {}
    for key, xlabel in (("params", "parameters (log scale)"), ("latency_ms", "latency at batch 1, ms (log scale)"),
                        ("size_bytes", "ONNX file size, bytes (log scale)")):
        rows = [r for r in full if r[key]]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
        xs = [r[key] for r in rows]
        ax.errorbar(xs, [r["kd_mean"] for r in rows], yerr=[r["kd_sd"] for r in rows], marker="o", capsize=3,
                    label="student with KD")
        ax.errorbar(xs, [r["no_kd_mean"] for r in rows], yerr=[r["no_kd_sd"] for r in rows], marker="s",
                    capsize=3, linestyle="--", label="same student without KD")
        ax.axhline(s["teacher"]["metric"], color="gray", linestyle=":", label="teacher")
        for r in rows:
            ax.annotate(r["student"], (r[key], r["kd_mean"]), textcoords="offset points", xytext=(4, 6), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{m['name']} vs {xlabel.split(' (')[0]}")
        out[f"metric_vs_{key}"] = _save(fig, folder / f"metric_vs_{key}.png")
    if len(s["label_fractions"]) > 1:
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
        for i, student in enumerate(dict.fromkeys(r["student"] for r in s["table"])):
            rows = sorted((r for r in s["table"] if r["student"] == student), key=lambda r: r["label_fraction"])
            fr = [100 * r["label_fraction"] for r in rows]
            line = ax.errorbar(fr, [r["kd_mean"] for r in rows], yerr=[r["kd_sd"] for r in rows], marker="o",
                               capsize=3, label=f"{student}, KD")
            ax.errorbar(fr, [r["no_kd_mean"] for r in rows], yerr=[r["no_kd_sd"] for r in rows], marker="s",
                        capsize=3, linestyle="--", color=line[0].get_color(), label=f"{student}, no KD")
        ax.axhline(s["teacher"]["metric"], color="gray", linestyle=":", label="teacher")
        ax.set_xscale("log")
        ax.set_xlabel("labels kept, % of the training split (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("data efficiency: KD learns from unlabelled inputs through the teacher")
        out["data_efficiency"] = _save(fig, folder / "data_efficiency.png")
    return out


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode()


def render_html(cfg, s: dict, images: dict[str, str], markdown: str) -> str:
    esc = html.escape
    table_md = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in table_md[0].strip("|").split("|")]
    body = "".join("<tr>" + "".join(f"<td>{esc(c.strip())}</td>" for c in ln.strip("|").split("|")) + "</tr>"
                   for ln in table_md[2:])
    figs = "".join(f'<figure><img alt="{esc(k)}" src="data:image/png;base64,{v}"></figure>' for k, v in images.items())
    items = "".join(f"<li>{esc(f)}</li>" for f in findings(s))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>kdpipe sweep: {esc(cfg.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f3f3f3}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:1em}}img{{max-width:560px}}</style></head><body>
<h1>kdpipe sweep: {esc(cfg.name)}</h1><h2>Findings</h2><ul>{items}</ul>{figs}
<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{body}</table></body></html>
"""


def write_sweep_report(cfg, root: Path, done: list) -> Path:
    s = summarise(cfg, [collect(p, pcfg) for p, pcfg in done])
    md = render_markdown(cfg, s)
    images = plots(s, root)
    atomic_write_json(root / "sweep.json", s)
    atomic_write_bytes(root / "sweep.md", md.encode())
    atomic_write_bytes(root / "sweep.html", render_html(cfg, s, images, md).encode())
    for f in findings(s):
        say(f"[sweep] {f}")
    return root / "sweep.md"


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

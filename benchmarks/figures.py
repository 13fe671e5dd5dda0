"""The figures README.md and docs/ quote come from one place: the results file an example's run wrote,
benchmarks/results/<example>.json (a summary of its report.json, with the command, date and machine).

    python benchmarks/figures.py record EXAMPLE RUN_DIR   # write benchmarks/results/EXAMPLE.json
    python benchmarks/figures.py update                   # rewrite the generated blocks from the files

In the Markdown, a figure is quoted with its source right after it, `+2.30<!-- fig default
kd.gain_points -->`, and a generated table sits between `<!-- block default stages -->` and
`<!-- /block -->`. tests/test_figures.py fails when a quoted figure or a block differs from its file.
A path is dotted keys into the file's "report": `[key=value,key=value]` picks a list item, a number an index.
A figure derived from two (a ratio) is quoted by the block or the sentence that shows both."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FIG = re.compile(r"([-+]?\d[\d,]*(?:\.\d+)?)[^\s<]{0,2}<!-- fig ([\w-]+) (\S+) -->")
BLOCK = re.compile(r"<!-- block ([\w-]+) (\w+) -->\n(.*?)<!-- /block -->", re.S)
KEEP = ("metric", "kd", "prune", "qad", "splits", "machine", "stages", "frontier")


def record(example: str, run_dir: Path, command: str | None = None) -> Path:
    """The summary of a run's report.json that the docs may quote."""
    report = json.loads((run_dir / "report" / "report.json").read_text())
    rows = [{"variant": r["variant"], "format": r["format"], "params": r["params"], "size_bytes": r["size_bytes"],
             "val": r["metric"]["val"], "test": r["metric"]["value"], "also": r.get("also") or {},
             "cpu_p50_ms_b1": ((r["latency"].get("cpu") or {}).get("1") or {}).get("p50_ms")}
            for r in report["rows"]]
    bundle = report.get("bundle") or {}
    config = json.loads((run_dir / "manifest.json").read_text())["config"]
    out = {"example": example, "command": command or f"kdpipe all configs/{example}.yaml",
           "date": report["created"][:10], "versions": report.get("versions"), "task": config["task"],
           "teacher": config["teacher"]["model"], "student": config["student"]["model"],
           "data": config["data"]["source"],
           "report": {**{k: report.get(k) for k in KEEP}, "rows": rows,
                      "bundle": {"variant": bundle.get("variant"),
                                 "reason": (bundle.get("choice") or {}).get("reason")}}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{example}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path


def load(example: str) -> dict:
    return json.loads((RESULTS / f"{example}.json").read_text())


def value(example: str, path: str):
    """The value at a dotted path (with [key=value] list picks) of an example's results."""
    node = load(example)["report"]
    for part in re.findall(r"[^.\[\]]+(?:\[[^\]]*\])?", path):
        name, _, pick = part.partition("[")
        node = node[int(name)] if name.isdigit() else node[name]
        if pick:  # [key=value,key=value]: the first item with all of them
            wants = [c.partition("=")[::2] for c in pick.rstrip("]").split(",")]
            node = next(x for x in node if all(str(x.get(k)) == v for k, v in wants))
    return node


def quoted_figures(text: str) -> list[tuple[str, str, str]]:
    """(written number, example, path) for every quoted figure of a Markdown text."""
    return [(m.group(1), m.group(2), m.group(3)) for m in FIG.finditer(text)]


def figure_matches(written: str, actual) -> bool:
    """The written number is the value at the decimals it was written with."""
    digits = written.replace(",", "").lstrip("+")
    decimals = len(digits.partition(".")[2])
    return abs(float(digits) - float(actual)) <= 0.5 * 10 ** -decimals + 1e-9


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def stages_block(example: str) -> str:
    """The stage-by-stage table of README's example sections: each step against the one before it."""
    res = load(example)
    rep = res["report"]
    unit = rep["metric"]["unit"]
    lines = [f"| stage | from → to | size | × smaller | val / test {rep['metric']['name']}{' ' + unit if unit else ''} "
             "| CPU p50 ms | × faster | stage time |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in rep["stages"]:
        step = s.get("step")
        if not step or s["stage"] == "all":
            continue
        (v0, v1, _), (t0, t1, _) = step["metric"]["val"], step["metric"]["test"]
        l0, l1 = step["latency_ms"]
        lines.append(f"| {s['stage']} | {step['from']} → {step['to']} | {_size(step['size_bytes'][0])} → "
                     f"{_size(step['size_bytes'][1])} | {step['size_factor']:.2f} | {v0:.2f} / {t0:.2f} → "
                     f"{v1:.2f} / {t1:.2f} | {l0:.3f} → {l1:.3f} | {step['speedup']:.2f} | {s['seconds']:.1f} s |")
    m = rep["machine"] or {}
    total = next((s["seconds"] for s in rep["stages"] if s["stage"] == "all"), None)
    lines.append("")
    lines.append(f"`{res['command']}`, {res['date']}, {m.get('cpu')}, {m.get('cores')} cores, SIMD "
                 f"{', '.join(m.get('simd') or []) or 'none'}" + (f", {total:.0f} s of stages" if total else "")
                 + f"; benchmarks/results/{example}.json.")
    return "\n".join(lines) + "\n"


def examples_block(where: str) -> str:
    """One row per results file: what each example distils, what shipped, what KD bought (with the
    paired evidence's verdict) and how long the run took. `where`: the Markdown's folder, `root` or
    `benchmarks`, for the links."""
    prefix = "results/" if where == "benchmarks" else "benchmarks/results/"
    lines = ["| example | task | teacher → student | data | shipped | test: student / no KD / teacher | KD | "
             "stages (2 cores) |", "|---|---|---|---|---|---:|---|---:|"]
    for path in sorted(RESULTS.glob("*.json")):
        if not (ROOT / "configs" / f"{path.stem}.yaml").exists():
            continue  # a study's run (another config than an example's): quoted where it is discussed
        res = json.loads(path.read_text())
        rep = res["report"]
        kd, unit = rep.get("kd") or {}, rep["metric"]["unit"]
        paired = (kd.get("paired") or {}).get("test")
        # the report's own outcome (report.build._kd_outcome), with the interval it rests on
        verdict = {"helped": "helped", "hurt": "hurt", "apart": "cannot be told apart", "same": "no difference",
                   None: "not recorded (a report older than kd.outcome)" if "baseline" in kd else "no baseline"
                   }[kd.get("outcome")]
        if "gain_points" in kd:
            verdict += f", {kd['gain_points']:+.2f}" + (f" ({paired['ci'][0]:+.2f} to {paired['ci'][1]:+.2f})"
                                                       if paired else "")
        total = next((s["seconds"] for s in rep["stages"] if s["stage"] == "all"), None)
        simd = "AVX-512 VNNI" if "avx512_vnni" in ((rep.get("machine") or {}).get("simd") or []) else "AVX2"
        scores = " / ".join(f"{kd[k]:.2f}" if k in kd else "-" for k in ("student", "baseline", "teacher"))
        lines.append(f"| [{res['example']}]({prefix}{path.name}) | {res['task']} | `{res['teacher']}` → "
                     f"`{res['student']}` | `{res['data']}` | {rep['bundle']['variant']} | {scores}{unit} | "
                     f"{verdict} | "
                     + (f"{total / 60:.1f} min ({simd}, {res['date']})" if total else "-") + " |")
    return "\n".join(lines) + "\n"


BLOCKS = {"stages": stages_block, "examples": examples_block}


def blocks(text: str) -> list[tuple[str, str, str, str]]:
    """(example, kind, written, rendered) for every generated block of a Markdown text."""
    return [(m.group(1), m.group(2), m.group(3), BLOCKS[m.group(2)](m.group(1))) for m in BLOCK.finditer(text)]


def _rewritten(m: re.Match) -> str:
    """A quoted figure written again from its file, at the decimals (and sign, thousands) it was written with."""
    written, example, path = m.group(1), m.group(2), m.group(3)
    decimals = len(written.replace(",", "").partition(".")[2])
    spec = ("+" if written.startswith("+") else "") + ("," if "," in written else "") + f".{decimals}f"
    number = format(float(value(example, path)), spec)
    return number + m.group(0)[len(written):]


def update() -> list[Path]:
    """Rewrites every generated block and every quoted figure from the results files."""
    changed = []
    for doc in DOCS:
        text = doc.read_text()
        new = FIG.sub(_rewritten, text)
        new = BLOCK.sub(lambda m: f"<!-- block {m.group(1)} {m.group(2)} -->\n{BLOCKS[m.group(2)](m.group(1))}"
                                  "<!-- /block -->", new)
        if new != text:
            doc.write_text(new)
            changed.append(doc)
    return changed


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"] and len(sys.argv) >= 4:
        print(record(sys.argv[2], Path(sys.argv[3]), " ".join(sys.argv[4:]) or None))
    elif sys.argv[1:] == ["update"]:
        print("\n".join(map(str, update())) or "every block is current")
    else:
        sys.exit(__doc__)

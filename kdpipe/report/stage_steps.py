"""What each stage bought and what it cost: the report's stage-by-stage table. The chain a bundle
comes from (teacher → distilled student → pruned → quantized → the bundle) is read off the report's
rows, one step a stage, each against the step before it, all measured the same way (ONNX on
onnxruntime, CPU, the smallest batch), so pruning's factor is over the distilled student, not over the
teacher. One sign convention: a change is after − before, in the metric's units.
"""

from __future__ import annotations

from kdpipe.report.frontier import cost_of
from kdpipe.units import fmt_size
from kdpipe.variants import QUANTIZED_TEACHER, bundle_label, named_bundle


def stage_steps(report: dict, timings: dict) -> list[dict]:
    """One entry per stage that ran, in pipeline order: its wall time and memory (`timings`, from the
    manifest), and for the stages that make a model the step it took: {from, to, size, params, metric
    val/test, latency} as [before, after] with the factor or change; last, "all": teacher to bundle."""
    rows = {bundle_label(r): r for r in report["rows"] if r["format"] != "torch"}
    lat = cost_of(report, "latency")
    chain = _chain(report, rows)
    steps = {stage: _step(rows[before], rows[after], before, after, lat) for stage, before, after in chain}
    out = [
        {
            "stage": name,
            "seconds": t.get("seconds"),
            "started": t.get("started"),
            "peak_rss_mb": t.get("peak_rss_mb"),
            **({"step": steps[name]} if name in steps else {}),
        }
        for name, t in sorted(timings.items(), key=lambda kv: kv[1].get("started") or "~")
    ]  # run order
    out = _with_qad_steps(out, chain, rows, lat)
    if chain:
        first, last = chain[0][1], chain[-1][2]
        out.append({"stage": "all", "seconds": round(sum(t.get("seconds") or 0 for t in timings.values()), 1),
                    "step": _step(rows[first], rows[last], first, last, lat)})
    return out


def _with_qad_steps(out: list[dict], chain: list, rows: dict, lat) -> list[dict]:
    """After the quantize step, the quantization-aware distilled copies of the same fp32 source that it
    does not show, each as a step of its own from that source (its time: the QAD training's)."""
    q = next((c for c in chain if c[0] == "quantize"), None)
    at = next((i for i, s in enumerate(out) if s["stage"] == "quantize"), None)
    if q is None or at is None:
        return out
    src = q[1].removesuffix("-fp32")
    extra = [k for k, r in rows.items() if k != q[2] and r.get("source") == src
             and (r.get("quantization") or {}).get("qad")]
    steps = [{"stage": "quantize (QAD)", "seconds": rows[k]["quantization"]["qad"]["seconds"],
              "step": _step(rows[q[1]], rows[k], q[1], k, lat)} for k in extra]
    return out[:at + 1] + steps + out[at + 1:]


def _step(a: dict, b: dict, before: str, after: str, lat) -> dict:
    return {
        "from": before,
        "to": after,
        "size_bytes": [a["size_bytes"], b["size_bytes"]],
        "size_factor": _ratio(a["size_bytes"], b["size_bytes"]),
        "params": [a["params"], b["params"]],
        "metric": {
            split: [x, y, round(y - x, 4)]
            for split, x, y in (
                ("val", a["metric"]["val"], b["metric"]["val"]),
                ("test", a["metric"]["value"], b["metric"]["value"]),
            )
        },
        "latency_ms": [lat(a), lat(b)],
        "speedup": _ratio(lat(a), lat(b)),
    }


def _chain(report: dict, rows: dict) -> list[tuple[str, str, str]]:
    """(stage, before, after) for each step that made the bundle's line of models."""
    if "teacher-fp32" not in rows or "student-fp32" not in rows:
        return []
    chain = [("distill", "teacher-fp32", "student-fp32")]
    end = "student"
    if "pruned-fp32" in rows:
        chain.append(("prune", "student-fp32", "pruned-fp32"))
        end = "pruned"
    bundle = (report.get("bundle") or {}).get("variant")
    bundle = named_bundle(bundle, rows) if bundle else None
    copies = [k for k, r in rows.items() if r.get("source") == end and r["format"] != "onnx-fp32"]
    if copies:
        left_out = {b["variant"] for b in ((report.get("int8") or {}).get("over_budget") or [])}
        lat = cost_of(report, "latency")
        quantized = bundle if bundle in copies else min(
            copies, key=lambda k: (k in left_out, lat(rows[k]) or float("inf"), rows[k]["size_bytes"]))
        chain.append(("quantize", f"{end}-fp32", quantized))
    if bundle:
        chain.append(("export", chain[-1][2], bundle))
    return chain


def _ratio(before, after) -> float | None:
    return round(before / after, 3) if before and after else None


STEP_NAMES = {"distill": "distill", "prune": "prune", "quantize": "quantize", "export": "export: the bundle",
              "all": "all: teacher → bundle"}


def steps_table(report: dict) -> tuple[list[str], list[list[str]]] | None:
    """The stage-by-stage table for the terminal, Markdown and HTML: one row per step."""
    stages = [s for s in report.get("stages") or [] if "step" in s]
    if not stages:
        return None
    m = report["metric"]
    unit = m["unit"]
    better = "higher" if m["higher_is_better"] else "lower"
    b = min(report["batch_sizes"])
    head = ["stage", "from → to", "size", "x smaller", "params", f"val {m['name']} {unit}".rstrip(),
            f"test {m['name']} {unit}".rstrip(), f"change val / test (after − before; {better} is better)",
            f"CPU p50 ms (b{b})", "x faster", "stage time"]
    body = []
    for s in stages:
        st = s["step"]
        same = st["from"] == st["to"]
        body.append([
            STEP_NAMES.get(s["stage"], s["stage"]),
            st["to"] + " (unchanged)" if same else f"{st['from']} → {st['to']}",
            _pair(st["size_bytes"], fmt_size), _factor(st["size_factor"]), _pair(st["params"], lambda v: f"{v:,}"),
            _pair(st["metric"]["val"][:2], lambda v: f"{v:.2f}"), _pair(st["metric"]["test"][:2], lambda v: f"{v:.2f}"),
            f"{st['metric']['val'][2]:+.2f} / {st['metric']['test'][2]:+.2f}",
            _pair(st["latency_ms"], lambda v: f"{v:.3f}" if v is not None else "-"), _factor(st["speedup"]),
            f"{s['seconds']:.1f} s" if s.get("seconds") is not None else "-",
        ])
    return head, body


def quantize_finding(report: dict) -> str | None:
    """Which quantized copy kept what of its fp32 source (validation), and what it bought (size, speed)."""
    rows = {bundle_label(r): r for r in report.get("rows", []) if r["format"] != "torch"}
    if not rows:
        return None
    lat = cost_of(report, "latency")
    parts = []
    for name, r in rows.items():
        vs = r.get("vs_source")
        src = rows.get(f"{r.get('source')}-fp32")
        if not vs or not src:
            continue
        kept = (
            f"{vs['agreement_val']:.1f}% of answers kept" if vs.get("agreement_val") is not None else "outputs compared"
        )
        speed = _ratio(lat(src), lat(r))
        parts.append(f"{name} {_factor(_ratio(src['size_bytes'], r['size_bytes']))} smaller"
                     + (f", {_factor(speed)} faster" if speed else "") + f", {kept}, "
                     f"net {0.0 - vs['drop_val']:+.2f} (95% {0.0 - vs['drop_val_ci'][1]:+.2f} to "
                     f"{0.0 - vs['drop_val_ci'][0]:+.2f})")
    if not parts:
        return None
    return ("Quantization, each copy against its fp32 source on validation (change = copy − source): "
            + "; ".join(parts) + (f". {QUANTIZED_TEACHER} is the teacher's copy: what a user gets without kdpipe's "
                                  "distillation." if QUANTIZED_TEACHER in rows else "."))


def _pair(values, fmt) -> str:
    a, b = values
    return fmt(a) if a == b else f"{fmt(a)} → {fmt(b)}"


def _factor(v) -> str:
    return "-" if v is None else f"{v:.2f}x" if v < 10 else f"{v:.1f}x"

"""What a report says about quantization-aware distillation: each QAD variant beside the post-training
copy of the same source in the same bits (int8 dynamic, int4 weight-only), measured the same way:
answers kept of the fp32 source, what each broke, the test metric, batch-1 latency, and what the QAD
training cost beside the distill stage."""

from __future__ import annotations

from typing import Callable

# a QAD variant's post-training counterpart: same source, same bits
PTQ_OF = {"-int8-qad": "-int8-dynamic", "-int4-qad": "-int4"}


def qad_summary(rows: list[dict], distill_seconds: float | None,
                latency: Callable[[dict], float | None]) -> list[dict] | None:
    """report.json's `qad`: one entry per QAD variant, with its post-training counterpart where made;
    `latency`: a row's CPU p50 at the smallest batch (frontier.cost_of)."""
    by_name = {r["variant"]: r for r in rows if r["format"] != "torch"}
    out = []
    for r in rows:
        qad = (r.get("quantization") or {}).get("qad")
        if not qad:
            continue
        ptq_name = next((r["variant"].replace(k, v) for k, v in PTQ_OF.items() if r["variant"].endswith(k)), None)
        ptq = by_name.get(ptq_name)

        def facts(x):
            vs = x.get("vs_source") or {}
            return {"variant": x["variant"], "test": x["metric"]["value"], "val": x["metric"]["val"],
                    "kept_val": vs.get("agreement_val"), "kept_test": vs.get("agreement_test"),
                    "damage_val": vs.get("damage_val"), "latency_b1_ms": latency(x), "size_bytes": x["size_bytes"]}

        out.append({"qad": facts(r), "ptq": facts(ptq) if ptq else None, "source": r.get("source"),
                    "seconds": qad["seconds"], "epochs": qad["epochs"], "distill_seconds": distill_seconds,
                    "export_agreement_val": qad.get("export_agreement_val")})
    return out or None


def qad_finding(report: dict) -> str | None:
    entries = report.get("qad")
    if not entries:
        return None
    m = report["metric"]
    u, sign = m["unit"], 1 if m["higher_is_better"] else -1
    parts = []
    for e in entries:
        q, p = e["qad"], e["ptq"]
        cost = f"{e['seconds']:.0f} s of training" + (
            f" ({e['seconds'] / e['distill_seconds']:.2f}x the distill stage)" if e.get("distill_seconds") else "")
        if p is None:
            parts.append(f"{q['variant']}: test {q['test']:.2f}{u}, {q['kept_val']}% of its source's validation "
                         f"answers kept; {cost}")
            continue
        gain = sign * (q["test"] - p["test"])
        pts = " points" if u == "%" else ""
        verdict = (f"QAD {gain:+.2f}{pts} on test over post-training" if gain > 0 else
                   "level with post-training quantization on test" if gain == 0 else
                   f"QAD did not beat post-training quantization on test ({gain:+.2f}{pts}): {p['variant']} is the "
                   "better copy")
        parts.append(f"{q['variant']} against {p['variant']} (post-training): answers of the fp32 source kept "
                     f"{q['kept_val']}% vs {p['kept_val']}% (validation), {q['kept_test']}% vs {p['kept_test']}% "
                     f"(test); broken {q['damage_val']:.2f} vs {p['damage_val']:.2f}; test {q['test']:.2f} vs "
                     f"{p['test']:.2f}{u}"
                     + (f"; batch-1 {q['latency_b1_ms']:.3f} vs {p['latency_b1_ms']:.3f} ms"
                        if q["latency_b1_ms"] and p["latency_b1_ms"] else "")
                     + f"; {verdict}; {cost}")
    return "Quantization-aware distillation (the copy trained against the fp32 teacher as its quantized graph " \
           "computes): " + "; ".join(parts) + "."

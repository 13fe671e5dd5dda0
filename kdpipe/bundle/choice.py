"""How `export.bundle: auto` chooses the variant to ship, on paired evidence (kdpipe.evaluation.evidence): what
the export stage decides with, kept apart from the stage's export and bookkeeping so that the rule
reads in one place (tests/bundle/test_bundle_choice.py)."""

from __future__ import annotations

from kdpipe.errors import ConfigError, KdpipeError
from kdpipe.evaluation.evidence import paired_drop, samples_needed
from kdpipe.variants import VariantRow, bundle_label, named_bundle

SAME_SPEED = 1.05  # batch-1 latencies within 5% of the fastest count as a tie: the smaller file wins there


def choose_bundle(ec, candidates: list[VariantRow], metric, latency: dict[str, float],
                  evidence: dict[str, dict | None]) -> tuple[dict, dict]:
    """The variant to ship and why, decided on paired evidence: each candidate is compared with the
    teacher (ONNX fp32) on the same validation samples (a 95% paired interval on how much worse it is).

    auto, in order:
    1. A quantized variant whose damage against its own fp32 source exceeds `max_drop` is left out:
       the answers it broke, which answers it happened to fix do not cancel (evidence.versus).
    2. Of the rest, those *shown* within `max_drop` of the teacher (upper bound <= max_drop): the
       fastest at batch 1 (the smallest of those within 5% of its speed).
    3. When the validation split cannot show any within (too few samples, or none close enough): the
       most accurate, and with it every variant the evidence cannot tell from it (their paired interval
       against it reaches 0); of those, the fastest, as in 2.
    With `export.budget` (latency, size, speed against the teacher, measured here): of the variants that
    meet it, the most accurate and every variant the evidence cannot tell from it; of those the fastest.
    The teacher in fp32 is not a candidate: it is what the bundle is compared with. The teacher
    quantized without distillation is one, and so is the student trained without KD (and its int8 copy):
    where KD did not pay, that is the better model."""
    by_label = {bundle_label(r): r for r in candidates}
    if ec.bundle != "auto":
        return _named(ec, by_label)
    pool = [r for r in candidates if bundle_label(r) != "teacher-fp32"]
    facts = _versus_teacher(pool, by_label["teacher-fp32"], metric, evidence)
    damaged = {bundle_label(r) for r in pool if _damage(r) > ec.max_drop}
    eligible = [r for r in pool if bundle_label(r) not in damaged] or pool
    within = [r for r in eligible if facts[bundle_label(r)]["ci"][1] <= ec.max_drop]
    reference = (evidence.get("teacher-fp32") or {}).get("val")
    n = len(reference) if reference is not None else None
    units = (" point" if ec.max_drop == 1 else " points") if metric.unit == "%" else ""
    budget = _terms(ec.budget)
    margins = {bundle_label(r): _margins(r, budget, latency) for r in pool} if budget else {}
    if budget:
        fits = [r for r in eligible if min(margins[bundle_label(r)].values()) >= 0]
        if not fits:
            raise KdpipeError(_nothing_fits(budget, eligible, margins))
        best, close = _closest_to_best(fits, metric, latency, evidence)
        chosen, near = _fastest(close, latency, metric)
        reason = (f"the budget ({_said(budget)}, measured here at batch 1): of the {len(fits)} variant"
                  f"{'s' if len(fits) > 1 else ''} that meet it, the most accurate on validation "
                  f"({bundle_label(best)}, {best['metric']['val']:.2f}{metric.unit})"
                  + (f" and the {len(close) - 1} the evidence cannot tell from it, the fastest" if len(close) > 1
                     else ""))
    elif within:
        chosen, near = _fastest(within, latency, metric)
        close = within
        reason = ((f"the fastest at batch 1 of the {len(within)} variants" if len(within) > 1 else "the only variant")
                  + f" shown within {ec.max_drop:g}{units} of the teacher's validation {metric.name} (paired 95% upper "
                  f"bound{'s' if len(within) > 1 else ''} <= {ec.max_drop:g})"
                  + (f"; the smallest of the {len(near)} within 5% of its speed" if len(near) > 1 else ""))
    else:
        best, close = _closest_to_best(eligible, metric, latency, evidence)
        chosen, near = _fastest(close, latency, metric)
        lowest = min(facts[bundle_label(r)]["ci"][1] for r in eligible)
        reason = (f"no variant is shown within {ec.max_drop:g}{units} of the teacher's validation {metric.name}"
                  + (f" on {n:,} samples" if n else "") + f" (the lowest paired 95% upper bound is {lowest:.2f}); "
                  f"of the {len(close)} variant{'s' if len(close) > 1 else ''} the evidence cannot tell from the most "
                  f"accurate ({bundle_label(best)}, {best['metric']['val']:.2f}{metric.unit}), the fastest at batch 1")
    if damaged:
        reason += (f"; left out for breaking more than {ec.max_drop:g}{units} against their fp32 source: "
                   + ", ".join(f"{d} ({_damage(by_label[d]):.2f})" for d in sorted(damaged)))
    reason += _against_the_quantized_teacher(chosen, close)
    if chosen.get("source", chosen["variant"]) == "baseline":
        reason += "; it was trained without distillation: KD did not pay here"
    choice = {"rule": "budget" if budget else "auto", "reason": reason, "max_drop": ec.max_drop,
              "teacher_val": by_label["teacher-fp32"]["metric"]["val"], "validation_samples": n,
              **({"budget": budget} if budget else {}),
              "candidates": [{**_candidate(r, facts, latency, r in within, bundle_label(r) in damaged),
                              **({"margin": margins[bundle_label(r)]} if budget else {})} for r in pool]}
    resolution = _resolution(facts)
    if resolution is not None and resolution > ec.max_drop and n:
        choice["resolution"] = {"half_width": round(resolution, 4), "samples": n,
                                "samples_needed": samples_needed(resolution, n, ec.max_drop)}
    return chosen, choice


def _named(ec, by_label: dict) -> tuple[dict, dict]:
    """The variant `export.bundle` names, where this run made it."""
    wanted = named_bundle(ec.bundle, by_label)
    if wanted is None:  # possible under the config, but not made in this run (e.g. no fusions)
        raise ConfigError(f"export.bundle {ec.bundle!r}: not made in this run (made: {', '.join(sorted(by_label))})")
    return by_label[wanted], {"rule": "export.bundle", "reason": f"export.bundle names {ec.bundle}"}


def _versus_teacher(pool: list[VariantRow], teacher: VariantRow, metric, evidence: dict) -> dict[str, dict]:
    """Each candidate's paired drop against the teacher on validation (the point value alone for a
    row recorded without evidence)."""
    reference = (evidence.get("teacher-fp32") or {}).get("val")

    def vs_teacher(r) -> dict:
        mine = (evidence.get(bundle_label(r)) or {}).get("val")
        if reference is None or mine is None:
            d = metric.worse_by(teacher["metric"]["val"], r["metric"]["val"])
            return {"drop": round(d, 4), "ci": [round(d, 4), round(d, 4)], "no_evidence": True}
        return paired_drop(metric, reference, mine)

    return {bundle_label(r): vs_teacher(r) for r in pool}


def _closest_to_best(eligible: list[VariantRow], metric, latency: dict, evidence: dict):
    """The most accurate on validation, and every variant the evidence cannot tell from it (their
    paired interval against it reaches 0), itself included."""
    sign = 1 if metric.higher_is_better else -1
    best = max(eligible, key=lambda r: (sign * r["metric"]["val"], -latency[bundle_label(r)]))
    ref_best = (evidence.get(bundle_label(best)) or {}).get("val")

    def indistinguishable(r) -> bool:
        mine = (evidence.get(bundle_label(r)) or {}).get("val")
        if r is best or ref_best is None or mine is None:
            return r is best
        return paired_drop(metric, ref_best, mine)["ci"][0] <= 0

    return best, [r for r in eligible if indistinguishable(r)]


def _against_the_quantized_teacher(chosen: VariantRow, close: list[VariantRow]) -> str:
    """What the reason says where the teacher quantized without distillation was chosen, or could not
    be told from the choice."""
    students = [r for r in close if r.get("source") != "teacher"]
    if chosen.get("source") == "teacher":
        return "; it is the teacher quantized without distillation" + (
            ": the evidence cannot separate it from the distilled " + ", ".join(bundle_label(r) for r in students[:3])
            + ", and it is faster or smaller" if students else ": no distilled variant is as close to the teacher")
    if any(r.get("source") == "teacher" for r in close):
        return "; the evidence cannot separate it from the quantized teacher, and it is faster or smaller"
    return ""


def _candidate(r: VariantRow, facts: dict, latency: dict, shown_within: bool, left_out: bool) -> dict:
    """A candidate as the bundle choice records it (manifest, report, model card)."""
    label = bundle_label(r)
    return {"variant": label, "val": r["metric"]["val"], "val_drop": facts[label]["drop"],
            "val_drop_ci": facts[label]["ci"], **({"vs_source": r["vs_source"]} if r.get("vs_source") else {}),
            "size_bytes": r["size_bytes"], "latency_b1_ms": round(latency[label], 4),
            "shown_within": shown_within, "left_out": left_out}


def _terms(budget) -> dict[str, float]:
    """export.budget's terms that are set."""
    return {k: v for k, v in (budget.model_dump() if budget else {}).items() if v is not None}


def _margins(r: VariantRow, budget: dict, latency: dict) -> dict[str, float]:
    """How far inside each budget term a variant is (negative: by how much it misses), in the term's units."""
    lat = latency[bundle_label(r)]
    have = {"latency_ms": lat, "size_mb": r["size_bytes"] / 2**20, "speedup": latency["teacher-fp32"] / lat}
    return {k: round((have[k] - v) if k == "speedup" else (v - have[k]), 4) for k, v in budget.items()}


def _said(budget: dict) -> str:
    names = {"latency_ms": "latency <= {:g} ms", "size_mb": "size <= {:g} MB",
             "speedup": ">= {:g}x the teacher's speed"}
    return ", ".join(names[k].format(v) for k, v in budget.items())


def _nothing_fits(budget: dict, rows: list[VariantRow], margins: dict) -> str:
    """One line: the budget, the nearest variant (the smallest worst shortfall, relative) and by how much it misses."""
    def shortfall(r):
        return max(-m / budget[k] for k, m in margins[bundle_label(r)].items())

    nearest = min(rows, key=shortfall)
    unit = {"latency_ms": " ms", "size_mb": " MB", "speedup": "x"}
    misses = ", ".join(f"{k} misses by {-m:g}{unit[k]} ({-m / budget[k]:.0%})"
                       for k, m in margins[bundle_label(nearest)].items() if m < 0)
    return (f"export.budget: no variant meets {_said(budget)} on this machine; the nearest is "
            f"{bundle_label(nearest)}: {misses}. The other stages' results are kept: loosen the budget, or "
            "distil a smaller student")


def _damage(row: VariantRow) -> float:
    """A quantized row's damage against its fp32 source on validation (0 for rows made without one)."""
    return (row.get("vs_source") or {}).get("damage_val", 0.0)


def _fastest(rows: list[VariantRow], latency: dict[str, float], metric) -> tuple[VariantRow, list[VariantRow]]:
    """The fastest at batch 1, the smallest of those within 5% of its speed; and those near it."""
    fastest = min(latency[bundle_label(r)] for r in rows)
    near = [r for r in rows if latency[bundle_label(r)] <= fastest * SAME_SPEED]
    # the same size too (a student and its no-KD twin): the more accurate on validation
    sign = -1 if metric.higher_is_better else 1
    return min(near, key=lambda r: (r["size_bytes"], sign * r["metric"]["val"], latency[bundle_label(r)])), near


def _resolution(facts: dict) -> float | None:
    """How finely the validation split tells a variant from the teacher: the half-width of the paired
    interval of the distilled student (fp32) against it."""
    f = facts.get("student-fp32") or facts.get("pruned-fp32")
    if f is None or f.get("no_evidence"):
        return None
    return (f["ci"][1] - f["ci"][0]) / 2

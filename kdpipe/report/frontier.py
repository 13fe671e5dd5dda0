"""The Pareto frontier of a report's deployable variants: those no other variant beats on both the
task metric and a cost (file size, batch-1 latency). Used by the report's findings and plots."""

from __future__ import annotations

from typing import Callable

from kdpipe.variants import bundle_label


def pareto(points: list[tuple[str, float, float]], higher_is_better: bool) -> list[str]:
    """points: (name, cost, metric). The names on the frontier, cheapest first: a point is on it when
    no other point costs no more and scores at least as well, being strictly better in one of the two.
    Of exact ties the first listed stays."""
    sign = 1.0 if higher_is_better else -1.0
    best = float("-inf")
    out = []
    for name, cost, metric in sorted(points, key=lambda p: (p[1], -sign * p[2])):
        if sign * metric > best:  # better than everything at most this cheap
            out.append(name)
            best = sign * metric
    return out


def cost_of(report: dict, kind: str) -> Callable[[dict], float | None]:
    """A report row's file size, or its CPU p50 at the smallest batch (None where not measured)."""
    b = str(min(report["batch_sizes"]))
    if kind == "size":
        return lambda r: r["size_bytes"]
    return lambda r: (r["latency"].get("cpu") or {}).get(b, {}).get("p50_ms")


def frontiers(report: dict) -> dict[str, list[str]]:
    """{"size": [...], "latency": [...]}: the ONNX variants (what a bundle can ship) on each frontier of
    test metric against cost; latency is the CPU p50 at the smallest batch, where measured."""
    higher = report["metric"]["higher_is_better"]
    out = {}
    for kind in ("size", "latency"):
        cost = cost_of(report, kind)
        pts = [
            (bundle_label(r), cost(r), r["metric"]["value"]) for r in report["rows"] if r["format"].startswith("onnx")
        ]
        pts = [p for p in pts if p[1] is not None and p[2] is not None]
        if pts:
            out[kind] = pareto(pts, higher)
    return out

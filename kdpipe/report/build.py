"""The report: one row per variant, joined from what every stage recorded in the manifest.

`build_report` makes the JSON document (its schema is in the README); the renderers turn it into the
terminal table, Markdown and HTML (with plots). Nothing here measures: it only joins and formats.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from kdpipe.evaluation.evidence import paired_drop
from kdpipe.report.frontier import cost_of, frontiers
from kdpipe.report.generation import generation_finding, generation_summary
from kdpipe.report.qad import qad_finding, qad_summary
from kdpipe.report.stage_steps import quantize_finding, stage_steps
from kdpipe.tasks import get_task
from kdpipe.training.teacher import epochs_run
from kdpipe.units import fmt_size
from kdpipe.variants import QUANTIZED_TEACHER, bundle_label

SCHEMA_VERSION = 2  # 2: `stages` is a list, each stage's time and the step it took (stage_steps)
NOT_AVAILABLE = "not available"
_NOT_MEASURED = ("not measured", "torch variants: teacher only")


def build_report(manifest: dict, providers: list[str], batch_sizes: list[int],
                 evidence: Callable[[dict], dict | None] | None = None) -> dict:
    """report.json from the manifest; `evidence` reads a row's per-sample evidence (paired comparisons)."""
    stages = manifest["stages"]
    out = lambda s: stages.get(s, {}).get("outputs", {})  # noqa: E731
    rows = [dict(r) for stage in ("distill", "prune", "export", "quantize") for r in out(stage).get("variants", [])]
    bench, distill, config = out("benchmark"), out("distill"), manifest.get("config", {})
    metric = get_task(distill["task"]).metric
    m = {"name": metric.name, "unit": metric.unit, "higher_is_better": metric.higher_is_better}
    teacher = next(r for r in rows if r["variant"] == "teacher" and r["format"] == "torch")
    table = [_table_row(r, teacher, metric, _latency(r, bench, providers)) for r in rows]
    report = {
        "schema_version": SCHEMA_VERSION,
        "name": manifest.get("name"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": config.get("task", "classification"),
        "providers": providers,
        "batch_sizes": batch_sizes,
        "rows": table,
        "metric": m,
        "kd": _kd_summary(
            rows, metric, distill.get("student_start"), distill.get("training", {}).get("student", {}).get("precision"),
            evidence,
        ),
        "prune": _prune_summary(out("prune")),
        "int8": _int8_summary(rows, metric, out("quantize"), config.get("export", {})),
        "bundle": out("export").get("bundle"),
        "splits": {
            "samples": distill.get("split_sizes"),
            "per_class": distill.get("class_counts"),
            # how many labels a teacher trained here saw (teacher.labels: all sees the hidden ones too)
            "teacher_labels": distill.get("training", {}).get("teacher", {}).get("labels_seen"),
        },
        "machine": bench.get("machine"),
        "benchmark_inputs": bench.get("input_shapes"),
        "benchmark_rounds": bench.get("rounds"),
        "benchmark_inputs_are_texts": bool(bench.get("padded_texts")),
        "generation": generation_summary(
            bench.get("generation"), table, (out("export").get("bundle") or {}).get("variant")
        ),
        "provider_status": bench.get("providers"),
        "versions": manifest.get("versions"),
        "seed": config.get("seed"),
    }
    if report["kd"]:
        report["kd"]["epochs"] = _epochs_run(distill.get("training", {}))
    report["qad"] = qad_summary(table, stages.get("distill", {}).get("seconds"), cost_of(report, "latency"))
    report["frontier"] = frontiers(report)
    # per stage, in pipeline order: its time, and what the step it took bought and cost (stage_steps)
    report["stages"] = stage_steps(report, {name: {"seconds": e.get("seconds"), "started": e.get("started"),
                                                   "peak_rss_mb": e.get("peak_rss_mb")} for name, e in stages.items()})
    return report


def _latency(r: dict, bench: dict, providers: list[str]) -> dict:
    """A variant's benchmark results by provider (and by sequence length where those were timed)."""
    latency = {}
    for p in providers:
        res = next((b for b in bench.get("results", []) if b["variant"] == r["variant"]
                    and b["format"] == r["format"] and b["provider"] == p), None)
        latency[p] = _latency_cell(res, bench.get("providers", {}).get(p), r["format"])
        if res and res.get("sequence_lengths"):
            latency[p]["by_sequence_length"] = {
                n: {b: {"p50_ms": m["p50_ms"], "throughput_per_s": m["throughput_per_s"]} for b, m in by_b.items()}
                for n, by_b in res["sequence_lengths"].items()}
    return latency


def _table_row(r: dict, teacher: dict, metric, latency: dict) -> dict:
    """A variant's row of the report: what its stage recorded, against the teacher (torch), with its timing."""
    return {
        "variant": r["variant"],
        "format": r["format"],
        "made_by": r["made_by"],
        "path": r["path"],
        "params": r["params"],
        "size_bytes": r["size_bytes"],
        "size_reduction": round(teacher["size_bytes"] / r["size_bytes"], 3),
        "metric": {"name": r["metric"]["name"], "value": r["metric"]["test"], "val": r["metric"]["val"],
                   # 95% bootstrap intervals over the samples (kdpipe.evaluation.evidence); absent in older runs
                   "ci": r["metric"].get("test_ci"), "val_ci": r["metric"].get("val_ci"),
                   "split": "test", "unit": metric.unit, "higher_is_better": metric.higher_is_better},
        # on test: agreement of top-1 predictions with the teacher's, and task extras
        "also": {k: v for k, v in r["metric"].items() if k not in ("name", "val", "test", "val_ci", "test_ci")},
        # quantized rows: answers kept of their fp32 source, and the paired interval of what they lost
        **({"vs_source": r["vs_source"]} if r.get("vs_source") else {}),
        "metric_drop_points": round(metric.worse_by(teacher["metric"]["test"], r["metric"]["test"]), 4),
        **({"source": r["source"]} if r.get("source") and r["format"] != "torch" else {}),
        "latency": latency,
        **({"quantization": r["quantization"]} if "quantization" in r else {}),
        **({"parity": r["parity"]} if "parity" in r else {}),
    }


def _latency_cell(res: dict | None, status: dict | None, fmt: str) -> dict:
    if res is None:
        if status is not None and not status.get("available"):
            return {"available": False, "note": status.get("reason") or NOT_AVAILABLE}
        return {"available": False, "note": _NOT_MEASURED[0] if fmt != "torch" else _NOT_MEASURED[1]}
    if not res.get("available"):
        return {"available": False, "note": res.get("note") or NOT_AVAILABLE}
    if res.get("fallback"):
        return {"available": False, "fallback": True, "note": res.get("note")}
    cell = {"available": True, "runtime": res["runtime"], "threads": res.get("threads")}
    if res.get("placement"):
        cell["placement"] = res["placement"]
    for b, m in res.get("batches", {}).items():
        cell[b] = {k: round(m[k], 4) for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s")} | {"runs": m["runs"]}
    return cell


def _kd_summary(rows: list[dict], metric, start: dict | None = None, precision: str | None = None,
                evidence: Callable[[dict], dict | None] | None = None) -> dict | None:
    """What KD bought: the student against the same model trained without KD, compared on the same
    samples (`evidence`: a row's per-sample evidence) with the paired 95% interval on validation and
    test; "KD helped" only where the test interval excludes zero."""
    by = {r["variant"]: r for r in rows if r["format"] == "torch"}
    if "student" not in by:
        return None
    student = by["student"]["metric"]["test"]
    summary = {"student": student, "teacher": by["teacher"]["metric"]["test"], "precision": precision or "fp32"}
    if start:  # the student before training (test split), and how it was initialised
        summary["student_start"] = {
            k: start[k] for k in ("test", "init", "teacher_layers", "layer_choice") if k in start
        }
    if "baseline" not in by:
        summary["verdict"] = ("no baseline: an embedding student has no labels to learn from without the teacher"
                              if metric.name.startswith("cosine") else
                              "no baseline was trained (distill.baseline: false), so the gain from KD is unknown")
        return summary
    base = by["baseline"]["metric"]["test"]
    gain = round(metric.worse_by(student, base), 4)  # how much worse the no-KD baseline is: what KD bought
    summary.update(baseline=base, gain_points=gain)
    paired = _paired_gain(metric, by["student"], by["baseline"], evidence)
    if paired:
        summary["paired"] = paired
    summary["outcome"] = _kd_outcome(gain, paired)
    summary["verdict"] = _kd_verdict(gain, paired, summary["outcome"], metric,
                                     metric.worse_by(summary["teacher"], base) <= 0)
    return summary


def _kd_outcome(gain: float, paired: dict) -> str:
    """What KD did, as the evidence allows: helped, hurt, apart (the test split's paired interval spans
    zero) or same (no evidence kept and equal scores)."""
    test = paired.get("test")
    if test:
        lo, hi = test["ci"]
        return "helped" if lo > 0 else "hurt" if hi < 0 else "apart"
    return "helped" if gain > 0 else "hurt" if gain < 0 else "same"


def _paired_gain(metric, student: dict, baseline: dict, evidence) -> dict:
    """KD's gain (how much worse the baseline is than the student) on each split's same samples, with
    its paired 95% interval; {} where the evidence was not kept."""
    s, b = (evidence(student), evidence(baseline)) if evidence else (None, None)
    if not s or not b:
        return {}
    out = {}
    for split in ("val", "test"):
        d = paired_drop(metric, s[split], b[split])
        out[split] = {"gain": d["drop"], "ci": d["ci"], "samples": len(s[split])}
    return out


def _kd_verdict(gain: float, paired: dict, outcome: str, metric, baseline_matches_teacher: bool) -> str:
    units = "points" if metric.unit == "%" else metric.name
    test = paired.get("test")
    said = ""  # (a run recorded before evidence was kept: the point values alone)
    if test:
        lo, hi = test["ci"]
        said = (f" (test {test['gain']:+.2f}, 95% {lo:+.2f} to {hi:+.2f} on {test['samples']:,} samples"
                + (f"; validation {paired['val']['gain']:+.2f}, 95% {paired['val']['ci'][0]:+.2f} to "
                   f"{paired['val']['ci'][1]:+.2f}" if "val" in paired else "") + ")")
    if outcome == "apart":
        return (f"KD and no KD cannot be told apart on {test['samples']:,} test samples: the student is "
                f"{gain:+.2f} {units} against the same model trained without KD{said}")
    if outcome == "same":
        return "KD made no difference on the test split: student and baseline score the same"
    if outcome == "helped":
        return f"KD helped: the student is {gain:.2f} {units} better than the same model trained without KD{said}"
    if baseline_matches_teacher:  # the no-KD student already reaches the teacher
        return (f"KD did not help here: the student is {-gain:.2f} {units} worse than the same model trained "
                f"without KD{said}, which already matches the teacher, so the teacher had nothing to add; KD "
                "pays for students that cannot learn the task as well alone")
    return (f"KD did not help here: the student is {-gain:.2f} {units} worse than the same model trained without "
            f"KD{said}; try another temperature/alpha or a larger student")


def _epochs_run(training: dict) -> dict:
    """How many epochs the student and the baseline trained, and with epochs: auto which was kept and why."""
    return {
        role: epochs_run(training[role]) for role in ("student", "baseline") if training.get(role, {}).get("history")
    }


def _int8_summary(rows: list[dict], metric, quantized: dict, export_cfg: dict) -> dict | None:
    """Int8 variants that lose more than export.max_drop against their fp32 source on validation
    (e.g. min-max calibration on transformer activations): named, so they are never taken silently;
    and the accuracy-aware search's record when it ran."""
    if not quantized or quantized.get("skipped"):
        return None
    budget = export_cfg.get("max_drop", 1.0)
    fp32 = {r["variant"]: r["metric"]["val"] for r in rows if r["format"] == "onnx-fp32"}
    broken = []
    for r in quantized.get("variants", []):
        src, vs = r.get("source"), r.get("vs_source")
        if r["format"] != "onnx-int8" or (vs is None and src not in fp32):
            continue
        lost = vs["drop_val"] if vs else metric.worse_by(fp32[src], r["metric"]["val"])
        damage = vs.get("damage_val", lost) if vs else lost  # answers it broke count, whatever it fixed
        if damage > budget:
            broken.append({"variant": r["variant"], "source": src, "val_lost": round(lost, 4), "damage": damage,
                           **({"kept_val": vs["agreement_val"]} if vs else {})})
    return {"budget": budget, "over_budget": broken, "search": quantized.get("int8_search")}


def _prune_summary(p: dict) -> dict | None:
    if not p or p.get("skipped"):
        return None
    return {k: p[k] for k in ("ratio", "removed", "params_before", "params_after", "accuracy_before_recovery",
                              "accuracy_after_recovery", "student_accuracy") if k in p}


# --- rendering -------------------------------------------------------------------------------

def _lat(cell: dict, batch: int, what: str) -> str:
    if cell.get("fallback"):
        return "fallback"
    if not cell.get("available"):
        return "-" if cell.get("note") in _NOT_MEASURED else NOT_AVAILABLE
    m = cell.get(str(batch))
    if not m:
        return "-"
    return f"{m['p50_ms']:.3f}" if what == "p50" else f"{m['throughput_per_s']:.0f}"


ALSO = {"other_source": "other source (data.other_source)", "teacher_agreement": "agrees w/ teacher %",
        "top10_neighbour_overlap": "top-10 overlap %"}


def table_columns(report: dict) -> tuple[list[str], list[list[str]]]:
    b_small, b_large = min(report["batch_sizes"]), max(report["batch_sizes"])
    m = report["metric"]
    short = {
        "accuracy": "acc",
        "masked-token accuracy": "masked acc",
        "cosine similarity to teacher": "cosine to teacher",
    }.get(m["name"], m["name"])
    better = "higher" if m["higher_is_better"] else "lower"
    head = ["variant", "format", "params", "size", "x smaller", f"val {short} {m['unit']} (95%)".replace("  ", " "),
            f"test {short} {m['unit']} (95%)".replace("  ", " "), f"test − teacher ({better} is better)"]
    teacher = next(r["metric"]["value"] for r in report["rows"] if r["variant"] == "teacher" and r["format"] == "torch")
    also = [k for k in ALSO if any(k in r.get("also", {}) for r in report["rows"])]
    head += [ALSO[k] for k in also]
    kept = any("vs_source" in r for r in report["rows"])
    head += ["kept of fp32 source % (val)"] if kept else []
    for p in report["providers"]:
        head += [f"{p} p50 ms (b{b_small})", f"{p} /s (b{b_large})"]
    body = []
    for r in report["rows"]:
        line = [r["variant"] + (" (bundle)" if _is_bundle(report, r) else ""), r["format"], f"{r['params']:,}",
                fmt_size(r["size_bytes"]), f"{r['size_reduction']:.1f}",
                _with_interval(r["metric"]["val"], r["metric"].get("val_ci")),
                _with_interval(r["metric"]["value"], r["metric"].get("ci")), f"{r['metric']['value'] - teacher:+.2f}"]
        line += [f"{r['also'][k]:.1f}" if k in r.get("also", {}) else "-" for k in also]
        if kept:
            vs = r.get("vs_source")
            line += [f"{vs['agreement_val']:.1f}" if vs and vs.get("agreement_val") is not None else "-"]
        for p in report["providers"]:
            line += [_lat(r["latency"][p], b_small, "p50"), _lat(r["latency"][p], b_large, "tput")]
        body.append(line)
    return head, body


def notes(report: dict) -> list[str]:
    out = []
    if report.get("kd"):
        kd = report["kd"]
        line = f"Knowledge distillation: {kd['verdict']}"
        u = report["metric"]["unit"]
        if "baseline" in kd:
            line += (
                f" (student {kd['student']:.2f}{u}, baseline {kd['baseline']:.2f}{u}, teacher {kd['teacher']:.2f}{u})."
            )
        if "student_start" in kd:
            s0 = kd["student_start"]
            kept = (f"; the teacher's layers {', '.join(map(str, s0['teacher_layers']))} (from 0, "
                    f"{s0['layer_choice'].replace('_', ' ')})" if s0.get("teacher_layers") else "")
            line = (
                line.rstrip(".")
                + f". Before training the student scored {s0['test']:.2f}{u} (init: {s0['init']}{kept})."
            )
        stops = {k: v for k, v in (kd.get("epochs") or {}).items() if "stopped" in v}
        if stops:
            line = line.rstrip(".") + ". Trained to convergence (distill.epochs: auto): " + "; ".join(
                f"{role} {v['epochs_run']} epochs, epoch {v['best_epoch']} kept ({v['stopped']})"
                for role, v in stops.items()) + "."
        if kd.get("precision") == "bf16":
            line = line.rstrip(".") + ". Trained in bf16 mixed precision (weights and optimiser in fp32)."
        out.append(line)
    if report.get("prune"):
        p = report["prune"]
        u = report["metric"]["unit"]
        removed = p.get("removed", {}).get("removed") or f"{p['ratio']:.0%} of channels/neurons"
        out.append(
            f"Pruning: {removed} removed, params {p['params_before']:,} -> "
            f"{p['params_after']:,}; test {report['metric']['name']} {p['student_accuracy']['test']:.2f}{u} before "
            f"pruning, {p['accuracy_before_recovery']['test']:.2f}{u} right after, "
            f"{p['accuracy_after_recovery']['test']:.2f}{u} after the KD recovery fine-tune."
        )
    line = quantize_finding(report)
    if line:
        out.append(line)
    out += int8_notes(report)
    qad = qad_finding(report)
    if qad:
        out.append(qad)
    if report.get("bundle"):
        why = (report["bundle"].get("choice") or {}).get("reason")
        out.append(f"Deployable bundle: {report['bundle']['path']}/ ({report['bundle']['variant']})"
                   + (f": {why}." if why else "."))
        versus = versus_quantized_teacher(report)
        if versus:
            out.append(versus)
        small = small_validation_note(report)
        if small:
            out.append(small)
    for line in (frontier_note(report), generation_finding(report)):
        if line:
            out.append(line)
    for p, st in (report.get("provider_status") or {}).items():
        if not st["available"]:
            out.append(f"{p.upper()} provider: {st['reason']}")
    m = report.get("machine")
    if m:
        out.append(f"Measured on {m['cpu']} ({m['cores']} cores; SIMD: {', '.join(m['simd']) or 'none listed'}).")
    rounds = report.get("benchmark_rounds")
    out.append(f"The metric ({report['metric']['name']}) is on the test split; latency is p50 per call, throughput "
               "is samples per second"
               + (f", every model timed side by side in {rounds} rounds" if rounds and rounds > 1 else "")
               + "; the torch teacher row is PyTorch eager, the others onnxruntime"
               + (_tokens_note(report["benchmark_inputs"]) if report.get("benchmark_inputs_are_texts") else "") + ".")
    return out


def _tokens_note(shapes: dict) -> str:
    """Which padded texts ([batch, 2, tokens]) were timed: every runtime got the same (the benchmark
    stage says which inputs are texts; a float array can have that shape too)."""
    return ("; every runtime timed on the same test texts, cut after the longest of each batch as an app feeds them ("
            + ", ".join(f"{s[-1]} tokens at batch {b}" for b, s in shapes.items()) + ")")


def int8_notes(report: dict) -> list[str]:
    i8 = report.get("int8") or {}
    if not i8:
        return []
    units = " points" if report["metric"]["unit"] == "%" else ""
    lines = []
    if i8.get("over_budget"):
        lines.append("Int8 that broke more than export.max_drop against its fp32 source on validation (answers it "
                     "fixed do not cancel those it broke; never shipped by auto): " + ", ".join(
                         f"{b['variant']} ({b.get('damage', b['val_lost']):.2f}{units} broken, net {b['val_lost']:+.2f}"
                         + (f"; {b['kept_val']:.1f}% of answers kept" if "kept_val" in b else "") + ")"
                         for b in i8["over_budget"]) + ".")
    s = i8.get("search")
    if s:
        broke = f" (broke {s['damage']:.2f})" if "damage" in s else ""
        head = (f"Accuracy-aware int8: {s['from']} lost {s['lost']:.2f}{units}{broke} against its fp32 source on "
                f"validation (budget {s['budget']:g}); ")
        if s["found"]:
            names = ", ".join(s["kept_float"][:4]) + (" ..." if len(s["kept_float"]) > 4 else "")
            lines.append(head + f"keeping the {len(s['kept_float'])} most sensitive of its {s['nodes']} quantizable "
                         f"nodes in float ({names}) brings {s['from']}-mixed within budget; its size and latency are "
                         "in the table.")
        else:
            lines.append(head + f"no mix of int8 and float nodes was within budget ({len(s['tried'])} tried): take "
                         "an fp32 variant of the student, or the quantized teacher.")
    return lines


def frontier_note(report: dict) -> str | None:
    """Which variants no other beats on both the metric and size (and batch-1 latency), and whether
    the bundle is one of them."""
    fr = report.get("frontier") or {}
    if not fr:
        return None
    parts = [f"against size: {', '.join(fr['size'])}"] if fr.get("size") else []
    if fr.get("latency"):
        parts.append(f"against batch-{min(report['batch_sizes'])} CPU latency: {', '.join(fr['latency'])}")
    line = "Pareto frontier (no other variant is both better and smaller/faster), " + "; ".join(parts) + "."
    bundle = (report.get("bundle") or {}).get("variant")
    if bundle:
        on = [k for k in ("size", "latency") if bundle in fr.get(k, []) or f"{bundle}-fp32" in fr.get(k, [])]
        line += (f" The bundle is on {' and '.join(on)} frontier{'s' if len(on) > 1 else ''}." if on else
                 " The bundle is on neither: a variant listed there is at least as good and cheaper.")
    return line


def _row_of(report: dict, label: str) -> dict | None:
    """A report row by its bundle label (`student-fp32` is the student's onnx-fp32 row)."""
    for r in report["rows"]:
        if r["format"] != "torch" and label in (r["variant"], bundle_label(r)):
            return r
    return None


def _with_interval(value: float, ci: list | None) -> str:
    """84.20 ±1.85: the value and the half-width of its 95% interval (recorded since kdpipe kept evidence)."""
    return f"{value:.2f}" + (f" ±{(ci[1] - ci[0]) / 2:.2f}" if ci else "")


def _is_bundle(report: dict, r: dict) -> bool:
    b = (report.get("bundle") or {}).get("variant")
    return bool(b) and r["format"] != "torch" and b in (r["variant"], bundle_label(r))


def small_validation_note(report: dict) -> str | None:
    """When the validation split tells a variant from the teacher more coarsely than export.max_drop
    (the paired 95% interval of the distilled student against it is wider), say so and how many
    samples would resolve it: the choice then rests on what the evidence can show, not on max_drop."""
    choice = (report.get("bundle") or {}).get("choice") or {}
    res = choice.get("resolution")
    if choice.get("rule") != "auto" or not res:
        return None
    units = " points" if report["metric"]["unit"] == "%" else ""
    return (f"The bundle was chosen on {res['samples']:,} validation samples, which tell a variant from the teacher "
            f"to about ±{res['half_width']:.2f}{units} (paired 95% interval), coarser than export.max_drop "
            f"({choice['max_drop']:g}): about {res['samples_needed']:,} samples would resolve it; a larger validation "
            "share (data.split) or more data makes the choice firmer.")


def versus_quantized_teacher(report: dict) -> str | None:
    """One sentence: does the bundle beat what a user gets without distillation (the teacher,
    dynamic int8) on the metric, size and batch-1 CPU latency; where each wins on some counts, which;
    and where the quantized teacher is as good on every count, that it is the one to take."""
    bundle, qt = _row_of(report, report["bundle"]["variant"]), _row_of(report, QUANTIZED_TEACHER)
    if not bundle or not qt or bundle is qt:
        return None
    m, b = report["metric"], str(min(report["batch_sizes"]))
    lat = cost_of(report, "latency")
    worse = bundle["metric_drop_points"] - qt["metric_drop_points"]  # > 0: the bundle scores worse
    smaller = qt["size_bytes"] / bundle["size_bytes"]
    faster = lat(qt) / lat(bundle) if lat(qt) and lat(bundle) else None
    facts = (f"{bundle['metric']['value']:.2f} vs {qt['metric']['value']:.2f}{m['unit']} test {m['name']}, "
             + (f"{smaller:.1f}x smaller" if smaller >= 1 else f"{1 / smaller:.1f}x larger")
             + ("" if faster is None else f", {faster:.1f}x faster at batch {b}" if faster >= 1
                else f", {1 / faster:.1f}x slower at batch {b}"))
    counts = {m["name"]: worse <= 0, "size": smaller >= 1}
    if faster is not None:
        counts["speed"] = faster >= 1
    wins = [k for k, ok in counts.items() if ok]
    losses = [k for k, ok in counts.items() if not ok]
    name = "the teacher quantized without distillation (teacher-int8-dynamic)"
    if not losses:
        return f"Against {name} the bundle is as good or better on every count: {facts}."
    if not wins:
        return (f"The bundle does not beat {name}: {facts}; teacher-int8-dynamic (quantize/) is the better "
                "choice here.")
    return (f"Against {name} the bundle wins on {' and '.join(wins)} and loses on {' and '.join(losses)}: {facts}; "
            f"take teacher-int8-dynamic (quantize/) where {' and '.join(losses)} "
            f"matter{'s' if len(losses) == 1 else ''} more.")

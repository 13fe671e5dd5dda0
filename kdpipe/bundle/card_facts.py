"""The facts of a bundle's model card, gathered from what the run's stages recorded: how the model was
made, what each step bought, its figures beside the teacher's, the quantized teacher's and the no-KD
student's, the inputs it expects. model_card.py renders them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kdpipe.bundle.model_card import ModelCard, Row, input_conventions
from kdpipe.data.splits import undo_preprocessing
from kdpipe.runtime.machine import machine_info
from kdpipe.training.teacher import epochs_run
from kdpipe.variants import QUANTIZED_TEACHER, VariantRow, bundle_label


def _params(params: dict) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else ""


@dataclass
class Shipped:
    """The bundle the export stage wrote: its folder, its variant's row and bundle description, the
    choice that picked it, and every candidate with its batch-1 latency (timed side by side)."""
    folder: Path
    row: VariantRow
    info: dict
    choice: dict
    candidates: list[VariantRow]
    latency: dict


def card_for_run(cfg, task, splits, distill: dict, prune: dict | None, shipped: Shipped) -> ModelCard:
    """The facts of the bundle's README.md: how it was made, and its test metric, size and batch-1
    latency beside the teacher's, the quantized teacher's and the no-KD student's (latencies timed
    here side by side, same threads and inputs)."""
    import onnxruntime

    chosen, info, m = shipped.row, shipped.info, task.metric
    raw = None if "tokenizer" in info or "preprocessing" not in info else undo_preprocessing(
        splits.train.x[:2000], info["preprocessing"])
    return ModelCard(
        title=f"{cfg.name}: {bundle_label(chosen)}",
        task=task.card_task,
        variant=bundle_label(chosen),
        precision=chosen["format"].removeprefix("onnx-"), metric_name=m.name,
        metric_unit=m.unit, higher_is_better=m.higher_is_better, made=_how_made(cfg, splits, distill, prune, shipped),
        rows=_beside(distill, shipped), test_samples=len(splits.test), data_source=cfg.data.source,
        machine={**machine_info(), "threads": shipped.choice["threads"], "onnxruntime": onnxruntime.__version__},
        runtimes=info.get("runtimes", {}), files=sorted(os.listdir(shipped.folder)) + ["README.md"],
        labels=info.get("labels"), chain=_chain(shipped), inputs=input_conventions(info, raw),
        license=cfg.export.license, sources=f"the teacher `{cfg.teacher.model}` and the data `{cfg.data.source}`")


def _beside(distill: dict, shipped: Shipped) -> list[Row]:
    """The bundle's test metric, size and latency beside the quantized teacher's, the teacher's and
    the no-KD student's."""
    by_label = {bundle_label(r): r for r in shipped.candidates}
    chosen, lat = shipped.row, shipped.latency
    rows = [Row(f"**this model** ({bundle_label(chosen)})", chosen["metric"]["test"],
                (shipped.folder / shipped.info["model"]).stat().st_size, lat[bundle_label(chosen)])]
    if QUANTIZED_TEACHER in by_label and by_label[QUANTIZED_TEACHER] is not chosen:
        q = by_label[QUANTIZED_TEACHER]
        rows.append(Row("teacher quantized (dynamic int8, no distillation)", q["metric"]["test"], q["size_bytes"],
                        lat[QUANTIZED_TEACHER]))
    t = by_label["teacher-fp32"]
    rows.append(Row("teacher (ONNX fp32)", t["metric"]["test"], t["size_bytes"], lat["teacher-fp32"]))
    baseline = next((r for r in distill["variants"] if r["variant"] == "baseline"), None)
    if baseline:
        rows.append(Row("the same student trained without KD (PyTorch)", baseline["metric"]["test"],
                        baseline["size_bytes"]))
    return rows


def _how_made(cfg, splits, distill: dict, prune: dict | None, shipped: Shipped) -> list[str]:
    """The steps the shipped variant went through, in order: a student that was not pruned is not
    said to be, and a quantized teacher was not distilled."""
    torch_rows = {r["variant"]: r for r in distill["variants"]}
    chosen, choice = shipped.row, shipped.choice
    source = chosen.get("source", chosen["variant"])
    tc, kd, training = cfg.teacher, distill.get("kd", {}), distill.get("training", {})
    given = training.get("teacher", {}).get("source")
    made = [f"Teacher: `{tc.model}` ({torch_rows['teacher']['params']:,} parameters), "
            + (f"given ({given})" + (", fine-tuned here" if "history" in training.get("teacher", {}) else "")
               if given else f"trained here for {tc.train.epochs} epochs") + "."]
    qi = chosen.get("quantization")
    qad = (qi or {}).get("qad")
    if source == "teacher":
        made.append(
            "This bundle is the teacher itself, quantized, then trained against its own fp32 outputs "
            f"(quantization-aware distillation). Chosen because {choice['reason']}."
            if qad
            else f"This bundle is the teacher itself, quantized: no distillation. Chosen because {choice['reason']}."
        )
    elif source == "baseline":
        made.append(f"Student: `{cfg.student.model}`{_params(cfg.student.params)} "
                    f"({torch_rows['baseline']['params']:,} "
                    f"parameters), trained {_epochs(training.get('baseline', {}), cfg.distill.epochs)} on the labels "
                    "alone, without distillation: it scored better on validation than the same student distilled "
                    "from the teacher.")
    else:
        made.append(f"Student: `{cfg.student.model}`{_params(cfg.student.params)} ({torch_rows['student']['params']:,} "
                    f"parameters), trained {_epochs(training.get('student', {}), cfg.distill.epochs)} with knowledge "
                    "distillation: " + ", ".join(f"{k} {v}" for k, v in kd.items() if k != "cache_teacher") + ".")
    if prune and source == "pruned":
        removed = prune.get("removed", {}).get("removed") or f"{prune['ratio']:.0%} of channels/neurons"
        made.append(f"Pruned ({prune.get('removed', {}).get('method', 'structured')}): {removed} removed "
                    f"({prune['params_before']:,} -> {prune['params_after']:,} parameters), then a KD recovery "
                    "fine-tune.")
    if qad:
        made.append(f"Quantization-aware distillation: {qad['epochs']} epochs ({qad['seconds']:.0f} s) with "
                    f"{qad['layers_emulated']} layers computing as the quantized graph does, learning from the fp32 "
                    "teacher's outputs with the distill section's KD loss; then exported and quantized as below.")
    made.append(_export_step(qi))
    made.append(f"Data: `{cfg.data.source}`, split train/validation/test {len(splits.train):,}/{len(splits.val):,}/"
                f"{len(splits.test):,} (seed {cfg.seed}); the bundle was chosen on validation: {choice['reason']}.")
    return made


def _export_step(qi: dict | None) -> str:
    if not qi:
        return "Exported to ONNX fp32 (checked against PyTorch)."
    weights = ("" if qi["method"] not in ("dynamic", "static") else
               ", 7-bit weights (no CPU's int8 kernels can saturate them)" if qi.get("reduce_range") else
               ", 8-bit weights (x86 CPUs without VNNI can saturate them and give other outputs: measure there, or "
               "set quantize.reduce_range: true)")
    return (f"Exported to ONNX and quantized: {qi['method']}"
            + (f", {qi['calibration']} calibration on {qi.get('calibration_samples', '?')} training samples"
               if qi.get("calibration") else "") + (", per-channel weights" if qi.get("per_channel") else "")
            + weights + ".")


def _chain(shipped: Shipped) -> list[Row]:
    """The line of models the bundle comes from: teacher, then its own source's steps (student,
    pruned), then it."""
    by_label = {bundle_label(r): r for r in shipped.candidates}
    chosen = shipped.row
    source = chosen.get("source", chosen["variant"])
    line = ["teacher-fp32"] if chosen.get("source") == "teacher" else [
        "teacher-fp32", "baseline-fp32"] if source == "baseline" else [
        k for k in ("teacher-fp32", "student-fp32", "pruned-fp32")
        if k in by_label and (k != "pruned-fp32" or source == "pruned")]
    if bundle_label(chosen) not in line:
        line.append(bundle_label(chosen))
    return [Row(k, by_label[k]["metric"]["test"], by_label[k]["size_bytes"], shipped.latency[k]) for k in line]


def _epochs(record: dict, configured) -> str:
    """How long a training ran, as recorded: its epochs, and with epochs: auto the one kept and why."""
    if not record.get("history"):
        return f"{configured} epochs"
    run = epochs_run(record)
    if "stopped" in run:
        return f"{run['epochs_run']} epochs (the best, epoch {run['best_epoch']}, kept; stopped: {run['stopped']})"
    return f"{run['epochs_run']} epochs"

"""distill: train (or load) the teacher, then the student with KD and, beside it, the same student on
hard labels only (the baseline KD must beat). Same initial weights, data, epochs and optimiser."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from kdpipe.data.splits import labelled
from kdpipe.evaluation.scoring import score, torch_predictor
from kdpipe.models.checkpoint import count_params
from kdpipe.models.dropout import set_dropout
from kdpipe.models.hf import freeze_token_embeddings
from kdpipe.progress import say
from kdpipe.training.intermediate import kd_training
from kdpipe.training.loop import Schedule, fit, seed_everything
from kdpipe.training.teacher import history, prepare_teacher, steps_scale
from kdpipe.variants import variant_row

NAME = "distill"
DISTRIBUTED = True  # every torchrun process trains; rank 0 evaluates and writes
REQUIRES: tuple[str, ...] = ()
SECTIONS = ("seed", "task", "device", "precision", "data", "teacher", "student", "distill")


def run(ctx) -> dict:
    cfg, data, task = ctx.cfg, ctx.splits, ctx.task
    dc = cfg.distill
    hard_loss, kd_loss = task.losses(cfg)
    common = dict(quiet=ctx.quiet, metric=task.metric)
    rows, training = [], {}

    teacher, t_spec, training["teacher"] = prepare_teacher(cfg, task, data, checkpoint=ctx.checkpoint("teacher"),
                                                           quiet=ctx.quiet)
    row, reference = _save(ctx, "teacher", teacher, t_spec)
    rows.append(row)

    seed_everything(cfg.seed + 1)
    init, s_spec = task.build("student", cfg, data, teacher)
    if dc.freeze_embeddings:  # before the copies: the baseline trains the same weights as the KD student
        freeze_token_embeddings(init)
    if dc.dropout is not None and not set_dropout(init, dc.dropout):
        say(f"[distill] distill.dropout {dc.dropout}: the student has no dropout to set")
    start = None
    if ctx.is_main:  # where the student starts: how much a slice or pruning of the teacher keeps
        from kdpipe.evaluation.scoring import evaluate

        predict = torch_predictor(init)
        start = {"val": evaluate(predict, data.val, task.metric), "test": evaluate(predict, data.test, task.metric),
                 **_start_init(cfg, s_spec)}
    schedule = Schedule.of(cfg, dc, seed=cfg.seed + 2)

    if dc.baseline and hard_loss is not None:  # (embeddings have no labels to train a baseline on)
        baseline = copy.deepcopy(init)
        # as many steps as the student's epochs take over every row (data.label_fraction); the same
        # stopping rule on its own validation loss (epochs: auto)
        scale = steps_scale(data)
        r = fit(baseline, labelled(data.train), data.val,
                replace(schedule, epochs=round(dc.epochs_at_most * scale),
                        patience=schedule.patience and max(1, round(schedule.patience * scale))),
                hard_loss, checkpoint=ctx.checkpoint("baseline"), desc="baseline", **common)
        training["baseline"] = history(r)
        rows.append(_save(ctx, "baseline", baseline, s_spec, reference)[0])

    student = copy.deepcopy(init)
    with kd_training(kd_loss, dc.intermediate, teacher, student, s_spec.get("teacher_layers"),
                     task.targets_from_teacher) as kd:
        r = fit(student, data.train, data.val, schedule, kd.loss, teacher=kd.signal(dc),
                checkpoint=ctx.checkpoint("student"), desc="student (KD)", monitor_loss=kd_loss, **common)
    training["student"] = history(r)
    rows.append(_save(ctx, "student", student, s_spec, reference)[0])

    if not ctx.is_main:  # extra torchrun processes only help train
        return {}
    by = {row["variant"]: row for row in rows}
    m = task.metric
    say(
        "[distill] test {}: teacher {:.2f}{u}, student {:.2f}{u}{}".format(
            m.name, by["teacher"]["metric"]["test"], by["student"]["metric"]["test"],
            f", baseline {by['baseline']['metric']['test']:.2f}{m.unit}" if "baseline" in by else "", u=m.unit,
        )
    )
    return {
        "variants": ctx.record_evidence(rows),
        "training": training,
        "student_start": start,
        "task": task.name,
        "metric": {"name": m.name, "unit": m.unit, "higher_is_better": m.higher_is_better},
        "labels": data.labels,
        "teacher_reference": ctx.rel(ctx.out / "teacher_reference.npy") if reference is not None else None,
        "split_sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "class_counts": class_counts(data),
        "data_sha256": data.sha256,
        "kd": {
            "temperature": dc.temperature,
            "alpha": dc.alpha,
            "cache_teacher": dc.cache_teacher,
            **task.kd_settings(dc),
            **(
                {"intermediate": {"hidden": kd.matcher.hidden, "attention": kd.matcher.attention}} if kd.matcher else {}
            ),
        },
    }


def _start_init(cfg, spec: dict) -> dict:
    """How the student was initialised: fresh, or a slice / pruning of the teacher, and which of the
    teacher's layers it kept (0-based) and how they were chosen."""
    if cfg.student.model != "derive:teacher":
        return {"init": "fresh"}
    p = cfg.student.params
    out = {"init": p.get("init", "slice")}
    if spec.get("teacher_layers") is not None:
        layers = p.get("layers", "every_other")
        out.update(teacher_layers=list(spec["teacher_layers"]),
                   layer_choice=("most important by activation" if isinstance(layers, int) else
                                 "as student.params.layers lists them" if isinstance(layers, list) else str(layers)))
    return out


def class_counts(data) -> dict | None:
    """Samples per class in each split, where the task has classes: a skewed or tiny split explains a
    metric, so the report shows them."""
    labels = getattr(data, "labels", None)
    if not labels or np.asarray(data.train.y).ndim != 1:
        return None
    out = {name: dict(zip(labels, np.bincount(np.asarray(labelled(split).y), minlength=len(labels)).tolist()))
           for name, split in (("train", data.train), ("val", data.val), ("test", data.test))}
    unlabelled = len(data.train) - len(labelled(data.train))
    return {**out, "train_unlabelled": unlabelled} if unlabelled else out


def _save(ctx, name, model, spec, reference=None) -> tuple[dict | None, np.ndarray | None]:
    """Write a model and measure it; for the teacher, also keep its top-1 test predictions, which
    every later variant's agreement is measured against."""
    if not ctx.is_main:
        return None, None
    task, data = ctx.task, ctx.splits
    path = task.save(model.cpu(), ctx.out, name, spec, data)
    sc = score(torch_predictor(model), data, task.metric, reference)
    collected = sc["_collected"]
    if name == "teacher" and collected.dtype.kind in "iu":
        np.save(ctx.out / "teacher_reference.npy", collected.astype(np.int32))
    else:
        collected = None
    return variant_row(name, "torch", path, ctx.rel(path), count_params(model), sc, NAME), collected

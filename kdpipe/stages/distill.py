"""distill: train (or load) the teacher, then the student with KD and, beside it, the same student on
hard labels only (the baseline KD must beat). Same initial weights, data, epochs and optimiser."""

from __future__ import annotations

import copy
from pathlib import Path

from kdpipe.evaluation import evaluate, torch_predictor
from kdpipe.models.checkpoint import count_params
from kdpipe.pipeline.artifacts import sha256_file
from kdpipe.progress import say
from kdpipe.training.loop import fit, resolve_device, seed_everything
from kdpipe.variants import variant_row

NAME = "distill"
DISTRIBUTED = True  # every torchrun process trains; rank 0 evaluates and writes
REQUIRES: tuple[str, ...] = ()
SECTIONS = ("seed", "task", "device", "precision", "data", "teacher", "student", "distill")


def run(ctx) -> dict:
    cfg, data, task = ctx.cfg, ctx.splits, ctx.task
    device = resolve_device(cfg.device, cfg.precision)
    dc = cfg.distill
    hard_loss, kd_loss = task.losses(cfg)
    common = dict(batch_size=cfg.data.batch_size, micro_batch_size=cfg.data.micro_batch_size, device=device,
                  precision=cfg.precision, quiet=ctx.quiet, metric=task.metric)
    rows, training = [], {}

    seed_everything(cfg.seed)
    teacher, t_spec = task.build("teacher", cfg, data)
    if cfg.teacher.weights or cfg.teacher.model.startswith("hf:"):  # given, not trained here
        source = cfg.teacher.weights or cfg.teacher.model
        training["teacher"] = {"source": source}
        if cfg.teacher.weights:
            training["teacher"]["sha256"] = sha256_file(Path(cfg.teacher.weights))
    else:
        tc = cfg.teacher.train
        r = fit(teacher, data.train, data.val, epochs=tc.epochs, lr=tc.lr, weight_decay=tc.weight_decay,
                warmup=tc.warmup, seed=cfg.seed, loss_fn=hard_loss, desc="teacher",
                checkpoint=ctx.checkpoint("teacher"), **common)
        training["teacher"] = _history(r)
    rows.append(_save(ctx, "teacher", teacher, t_spec))

    seed_everything(cfg.seed + 1)
    init, s_spec = task.build("student", cfg, data, teacher)
    train_args = dict(epochs=dc.epochs, lr=dc.lr, weight_decay=dc.weight_decay, warmup=dc.warmup, seed=cfg.seed + 2,
                      **common)

    if dc.baseline:
        baseline = copy.deepcopy(init)
        r = fit(baseline, data.train, data.val, loss_fn=hard_loss, desc="baseline",
                checkpoint=ctx.checkpoint("baseline"), **train_args)
        training["baseline"] = _history(r)
        rows.append(_save(ctx, "baseline", baseline, s_spec))

    student = copy.deepcopy(init)
    r = fit(student, data.train, data.val, loss_fn=kd_loss, teacher=teacher, cache_teacher=dc.cache_teacher,
            desc="student (KD)", checkpoint=ctx.checkpoint("student"), **train_args)
    training["student"] = _history(r)
    rows.append(_save(ctx, "student", student, s_spec))

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
        "variants": rows,
        "training": training,
        "task": task.name,
        "metric": {"name": m.name, "unit": m.unit, "higher_is_better": m.higher_is_better},
        "labels": data.labels,
        "split_sizes": {"train": len(data.train), "val": len(data.val), "test": len(data.test)},
        "data_sha256": data.sha256,
        "kd": {"temperature": dc.temperature, "alpha": dc.alpha, "cache_teacher": dc.cache_teacher,
               **({"divergence": dc.divergence, "beta": dc.beta} if task.name != "classification" else {})},
    }


def _history(r) -> dict:
    return {"final_val": r.final_val, "seconds_per_step": r.seconds_per_step, "history": r.history}


def _save(ctx, name, model, spec) -> dict | None:
    if not ctx.is_main:
        return None
    task, data = ctx.task, ctx.splits
    path = task.save(model.cpu(), ctx.out, name, spec, data)
    predict = torch_predictor(model)
    return variant_row(name, "torch", path, ctx.rel(path), count_params(model),
                       evaluate(predict, data.val, task.metric), evaluate(predict, data.test, task.metric), NAME,
                       metric=task.metric.name)

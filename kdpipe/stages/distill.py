"""distill: train (or load) the teacher, then the student with KD and, beside it, the same student on
hard labels only (the baseline KD must beat). Same initial weights, data, epochs and optimiser."""

from __future__ import annotations

import copy
from pathlib import Path

from kdpipe.evaluation import evaluate, torch_predictor
from kdpipe.models.checkpoint import count_params, load_weights_into, read_state_dict, save_model
from kdpipe.models.factory import build_model
from kdpipe.pipeline.artifacts import sha256_file
from kdpipe.progress import say
from kdpipe.training.kd_loss import hard_loss, kd_loss_fn
from kdpipe.training.loop import fit, resolve_device, seed_everything
from kdpipe.variants import model_spec, variant_row

NAME = "distill"
DISTRIBUTED = True  # every torchrun process trains; rank 0 evaluates and writes
REQUIRES: tuple[str, ...] = ()
SECTIONS = ("seed", "task", "device", "precision", "data", "teacher", "student", "distill")


def run(ctx) -> dict:
    cfg, splits = ctx.cfg, ctx.splits
    device = resolve_device(cfg.device, cfg.precision)
    dc = cfg.distill
    common = dict(batch_size=cfg.data.batch_size, micro_batch_size=cfg.data.micro_batch_size, device=device,
                  precision=cfg.precision, quiet=ctx.quiet)
    rows, training = [], {}

    seed_everything(cfg.seed)
    t_spec = model_spec(cfg.teacher, splits)
    teacher = build_model(cfg.teacher.model, cfg.teacher.params, splits.input_shape, splits.num_classes, "teacher.model")
    if cfg.teacher.weights:
        load_weights_into(teacher, read_state_dict(cfg.teacher.weights, "teacher.weights"), "teacher.weights")
        training["teacher"] = {"source": cfg.teacher.weights, "sha256": sha256_file(Path(cfg.teacher.weights))}
    else:
        tc = cfg.teacher.train
        r = fit(teacher, splits.train, splits.val, epochs=tc.epochs, lr=tc.lr, weight_decay=tc.weight_decay,
                seed=cfg.seed, loss_fn=hard_loss, desc="teacher", checkpoint=ctx.checkpoint("teacher"), **common)
        training["teacher"] = _history(r)
    rows.append(_save(ctx, "teacher", teacher, t_spec, splits))

    s_spec = model_spec(cfg.student, splits)
    seed_everything(cfg.seed + 1)
    init = build_model(cfg.student.model, cfg.student.params, splits.input_shape, splits.num_classes, "student.model")
    train_args = dict(epochs=dc.epochs, lr=dc.lr, weight_decay=dc.weight_decay, seed=cfg.seed + 2, **common)

    if dc.baseline:
        baseline = copy.deepcopy(init)
        r = fit(baseline, splits.train, splits.val, loss_fn=hard_loss, desc="baseline",
                checkpoint=ctx.checkpoint("baseline"), **train_args)
        training["baseline"] = _history(r)
        rows.append(_save(ctx, "baseline", baseline, s_spec, splits))

    student = copy.deepcopy(init)
    loss = kd_loss_fn(dc.temperature, dc.alpha)
    r = fit(student, splits.train, splits.val, loss_fn=loss, teacher=teacher, cache_teacher=dc.cache_teacher,
            desc="student (KD)", checkpoint=ctx.checkpoint("student"), **train_args)
    training["student"] = _history(r)
    rows.append(_save(ctx, "student", student, s_spec, splits))

    if not ctx.is_main:  # extra torchrun processes only help train
        return {}
    by = {row["variant"]: row for row in rows}
    say(
        "[distill] test accuracy: teacher {:.2f}%, student {:.2f}%{}".format(
            by["teacher"]["metric"]["test"], by["student"]["metric"]["test"],
            f", baseline {by['baseline']['metric']['test']:.2f}%" if "baseline" in by else "",
        )
    )
    return {
        "variants": rows,
        "training": training,
        "labels": splits.labels,
        "input_shape": list(splits.input_shape),
        "preprocessing": splits.preprocessing,
        "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "data_sha256": splits.sha256,
        "kd": {"temperature": dc.temperature, "alpha": dc.alpha, "cache_teacher": dc.cache_teacher},
    }



def _history(r) -> dict:
    return {"final_val": r.final_val, "seconds_per_step": r.seconds_per_step, "history": r.history}


def _save(ctx, name, model, spec, splits) -> dict | None:
    if not ctx.is_main:
        return None
    path = ctx.out / f"{name}.safetensors"
    model.cpu()
    save_model(model, path, spec)
    predict = torch_predictor(model)
    return variant_row(name, "torch", path, ctx.rel(path), count_params(model),
                       evaluate(predict, splits.val), evaluate(predict, splits.test), NAME)

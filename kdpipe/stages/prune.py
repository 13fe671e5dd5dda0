"""prune: structured pruning of the distilled student (channels, neurons, heads and layers really
removed: Torch-Pruning for array models, activation importance for transformers, each task's
`prune`), then a KD fine-tune from the teacher to win back accuracy (with the distill stage's
hidden-state matching where it is set)."""

from __future__ import annotations

from kdpipe.evaluation.scoring import evaluate, score, torch_predictor
from kdpipe.models.checkpoint import count_params
from kdpipe.progress import say
from kdpipe.training.intermediate import kd_training
from kdpipe.training.loop import Schedule, fit, seed_everything
from kdpipe.training.teacher import history
from kdpipe.variants import variant_row

NAME = "prune"
DISTRIBUTED = True  # every torchrun process trains the recovery; rank 0 evaluates and writes
REQUIRES = ("distill",)
SECTIONS = ("seed", "device", "precision", "prune")


def run(ctx) -> dict:
    cfg, pc = ctx.cfg, ctx.cfg.prune
    if not pc.enabled:
        say("[prune] disabled in the config (prune.enabled: false)")
        return {"skipped": "prune.enabled is false", "variants": []}
    task = ctx.task
    distilled = ctx.upstream("distill")
    rows = {r["variant"]: r for r in distilled["variants"]}
    splits = ctx.splits
    student, spec = task.load(ctx.file(rows["student"]["path"]), "distill/student")
    teacher, _ = task.load(ctx.file(rows["teacher"]["path"]), "distill/teacher")
    params_before = count_params(student)

    seed_everything(cfg.seed + 3)
    try:
        student, spec, removed = task.prune(student, spec, splits, pc)
    except NotImplementedError as e:
        say(f"[prune] skipped: {e}")
        return {"skipped": str(e), "variants": []}
    params_after = count_params(student)
    if ctx.is_main:
        predict = torch_predictor(student)
        before_recovery = {"val": evaluate(predict, splits.val, task.metric),
                           "test": evaluate(predict, splits.test, task.metric)}
        say(f"[prune] {removed['removed']}: params {params_before:,} -> {params_after:,}")

    dc = cfg.distill
    _, loss = task.losses(cfg)
    # recovered as distill trained: the same KD loss, and hidden-state matching where it is set
    with kd_training(loss, dc.intermediate, teacher, student, spec.get("teacher_layers"),
                     task.targets_from_teacher) as kd:
        r = fit(student, splits.train, splits.val, Schedule.of(cfg, pc.finetune, seed=cfg.seed + 4), kd.loss,
                teacher=kd.signal(dc), checkpoint=ctx.checkpoint("pruned"), metric=task.metric,
                desc="prune recovery (KD)", quiet=ctx.quiet)
    if not ctx.is_main:  # extra torchrun processes only help train
        return {}
    path = task.save(student.cpu(), ctx.out, "pruned", spec, splits)
    predict = torch_predictor(student)
    row = variant_row("pruned", "torch", path, ctx.rel(path), params_after,
                      score(predict, splits, task.metric, ctx.teacher_reference()), NAME)
    u = task.metric.unit
    say(f"[prune] test {task.metric.name} {before_recovery['test']:.2f}{u} after pruning, "
        f"{row['metric']['test']:.2f}{u} after recovery")
    return {
        "variants": ctx.record_evidence([row]),
        "params_before": params_before,
        "params_after": params_after,
        "ratio": pc.ratio,
        "removed": removed,
        "accuracy_before_recovery": before_recovery,
        "accuracy_after_recovery": {"val": row["metric"]["val"], "test": row["metric"]["test"]},
        "student_accuracy": rows["student"]["metric"],
        "recovery": history(r),  # as distill records its trainings: epochs, step time, teacher cache
    }

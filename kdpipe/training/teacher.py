"""The teacher a run distills from: built (a given one with its weights), and trained on this data
when it was not given or `teacher.finetune` asks for it. The distill stage and `kdpipe sweep` (which
trains one teacher for every point) both take it from here."""

from __future__ import annotations

from pathlib import Path

from kdpipe.data.splits import labelled, with_every_label
from kdpipe.io import sha256_file
from kdpipe.training.loop import FitResult, Schedule, fit, seed_everything


def history(r: FitResult) -> dict:
    """What a training run records in the manifest."""
    out = {"final_val": r.final_val, "seconds_per_step": r.seconds_per_step, "precision": r.precision,
           "history": r.history, **({"stopping": r.stopping} if r.stopping else {})}
    return {**out, "teacher_cache": r.teacher_cache} if r.teacher_cache else out


def epochs_run(record: dict) -> dict:
    """From what `history` recorded: the epochs a training ran and, with epochs: auto, the one it kept
    and why it stopped."""
    return record.get("stopping") or {"epochs_run": len(record.get("history", []))}


def steps_scale(data, rows_trained: int | None = None) -> float:
    """With data.label_fraction < 1, what learns from labels alone (a teacher trained here, the no-KD
    baseline) sees only the labelled rows (`rows_trained`, default: those of the training split), for
    as many steps as a pass over every row of the data takes: this many times the epochs. Texts of
    data.extra_texts never had labels and do not count: they are KD's alone, and adding them changes
    neither the teacher's nor the baseline's training."""
    rows = len(labelled(with_every_label(data.train)))  # every row that had a label before any was hidden
    return rows / max(len(labelled(data.train)) if rows_trained is None else rows_trained, 1)


def prepare_teacher(cfg, task, data, *, checkpoint=None, quiet: bool = False):
    """(teacher model, spec to rebuild it, what the manifest records of it)."""
    hard_loss, _ = task.losses(cfg)
    seed_everything(cfg.seed)
    teacher, spec = task.build("teacher", cfg, data)
    record: dict = {}
    given = cfg.teacher.weights or cfg.teacher.model.startswith("hf:")
    if given:
        record["source"] = cfg.teacher.weights or cfg.teacher.model
        if cfg.teacher.weights:
            record["sha256"] = sha256_file(Path(cfg.teacher.weights))
    # trained here, or a given one fine-tuned on this data first (an embedding teacher, with no labels to
    # learn from, is always used as it is)
    if (not given or cfg.teacher.finetune) and hard_loss is not None:
        tc = cfg.teacher.train
        every = cfg.teacher.labels == "all"
        # rows without any label (data.extra_texts) are for KD only; like the baseline, the teacher takes as
        # many steps as a pass over every row of the data (steps_scale)
        train = labelled(with_every_label(data.train) if every else data.train)
        schedule = Schedule.of(cfg, tc, seed=cfg.seed, epochs=round(tc.epochs * steps_scale(data, len(train))))
        r = fit(teacher, train, data.val, schedule, hard_loss, checkpoint=checkpoint, metric=task.metric,
                desc="teacher", quiet=quiet)
        record.update(history(r), labels_seen=len(train))
    return teacher, spec, record

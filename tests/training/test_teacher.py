"""kdpipe/training/teacher.py: which labels a teacher trained here learns from."""

from __future__ import annotations

import pytest

from kdpipe.config.load import load_config
from kdpipe.config.recorded import section_dict
from kdpipe.tasks import load_data, task_for
from kdpipe.training.teacher import prepare_teacher, steps_scale
from tests.conftest import write_config


@pytest.mark.parametrize("labels", ["kept", "all"])
def test_teacher_labels_kept_or_all(tmp_path, labels):
    cfg = load_config(write_config(tmp_path, {"data.label_fraction": 0.2, "teacher.labels": labels,
                                              "teacher.train.epochs": 1}))
    data = load_data(cfg)
    kept = int((data.train.y >= 0).sum())
    assert kept < len(data.train) and data.train.y_all is not None
    _, _, record = prepare_teacher(cfg, task_for(cfg), data, quiet=True)
    assert record["labels_seen"] == (len(data.train) if labels == "all" else kept)
    # kept labels: the teacher sees fewer rows, for as many steps as a pass over every row
    assert len(record["history"]) == (1 if labels == "all" else round(len(data.train) / kept))


def test_steps_scale_counts_hidden_labels_but_not_extra_texts():
    """What learns from labels alone takes as many steps as a pass over the data's rows: rows whose
    label was hidden (label_fraction) count, texts added for KD (data.extra_texts, never labelled) do not."""
    from types import SimpleNamespace

    import numpy as np

    from kdpipe.data.splits import Split

    x = np.zeros((10, 2))
    plain = Split(x, np.arange(10) % 2)
    hidden = Split(x, np.r_[np.zeros(5), np.full(5, -100)].astype(int), y_all=np.arange(10) % 2)
    extra = Split(x, np.r_[np.zeros(8), np.full(2, -100)].astype(int), y_all=np.r_[np.zeros(8), np.full(2, -100)])
    both = Split(x, np.r_[np.zeros(4), np.full(6, -100)].astype(int), y_all=np.r_[np.zeros(8), np.full(2, -100)])
    scale = [steps_scale(SimpleNamespace(train=s)) for s in (plain, hidden, extra, both)]
    assert scale == [1.0, 2.0, 1.0, 2.0]
    assert steps_scale(SimpleNamespace(train=both), rows_trained=8) == 1.0  # teacher.labels: all


def test_a_key_added_later_at_its_neutral_value_keeps_old_runs_current(tmp_path):
    """teacher.labels came after runs were recorded: at "kept" it is left out of the recorded config
    and fingerprint (so those runs stay current); at "all" it is recorded."""
    kept = section_dict(load_config(write_config(tmp_path)), ("teacher",))
    every = section_dict(load_config(write_config(tmp_path, {"teacher.labels": "all"})), ("teacher",))
    assert "labels" not in kept["teacher"] and every["teacher"]["labels"] == "all"

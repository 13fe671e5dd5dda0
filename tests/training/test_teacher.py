"""kdpipe/training/teacher.py: which labels a teacher trained here learns from."""

from __future__ import annotations

import pytest

from kdpipe.pipeline.config import load_config, section_dict
from kdpipe.tasks import load_data, task_for
from kdpipe.training.teacher import prepare_teacher
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


def test_a_key_added_later_at_its_neutral_value_keeps_old_runs_current(tmp_path):
    """teacher.labels came after runs were recorded: at "kept" it is left out of the recorded config
    and fingerprint (so those runs stay current); at "all" it is recorded."""
    kept = section_dict(load_config(write_config(tmp_path)), ("teacher",))
    every = section_dict(load_config(write_config(tmp_path, {"teacher.labels": "all"})), ("teacher",))
    assert "labels" not in kept["teacher"] and every["teacher"]["labels"] == "all"

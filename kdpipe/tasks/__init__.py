"""The tasks kdpipe distills for, by the config's `task` key (classification of text when the models
are transformers)."""

from __future__ import annotations

from kdpipe.memo import by_content
from kdpipe.metrics import Metric
from kdpipe.tasks.base import Task
from kdpipe.tasks.classification import Classification
from kdpipe.tasks.embedding import Embedding
from kdpipe.tasks.language_model import CausalLM, MaskedLM
from kdpipe.tasks.text_classification import TextClassification

TASKS: dict[str, Task] = {t.name: t for t in (Classification(), CausalLM(), MaskedLM(), Embedding())}
TEXT_CLASSIFICATION = TextClassification()


def get_task(name: str) -> Task:
    """The task by name (what a report needs: its metric)."""
    return TASKS[name]


def task_for(cfg) -> Task:
    """The task that runs this config."""
    if cfg.task == "classification" and cfg.text_data:
        return TEXT_CLASSIFICATION
    return TASKS[cfg.task]


@by_content(maxsize=2)
def load_data(cfg):
    """The task's data for this config, loaded once per process (pre-flight and stages share it)."""
    task = task_for(cfg)
    given = [k for k in ("extra_texts", "other_source") if getattr(cfg.data, k)]
    if given and not task.takes_other_texts:
        from kdpipe.errors import ConfigError

        raise ConfigError(f"data.{given[0]}: the embedding and text-classification tasks take it; this config's "
                          f"{cfg.task} task ({type(task).__name__}) does not")
    return task.load_data(cfg)


__all__ = ["TASKS", "Metric", "Task", "get_task", "load_data", "task_for"]

"""The tasks kdpipe distills for, by the config's `task` key."""

from __future__ import annotations

from functools import lru_cache

from kdpipe.tasks.base import Metric, Task
from kdpipe.tasks.classification import Classification
from kdpipe.tasks.language_model import CausalLM, MaskedLM

TASKS: dict[str, Task] = {t.name: t for t in (Classification(), CausalLM(), MaskedLM())}


def get_task(name: str) -> Task:
    return TASKS[name]


@lru_cache(maxsize=2)
def _data(config_json: str):
    from kdpipe.pipeline.config import Config

    cfg = Config.model_validate_json(config_json)
    return get_task(cfg.task).load_data(cfg)


def load_data(cfg):
    """The task's data for this config, loaded once per process (pre-flight and stages share it)."""
    return _data(cfg.model_dump_json())


__all__ = ["TASKS", "Metric", "Task", "get_task", "load_data"]

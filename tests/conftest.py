"""Shared fixtures: tiny configs (scikit-learn digits, models of a few hundred parameters) so that a
whole `kdpipe all` takes seconds, and one such run shared by the tests that only read its output."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
# teacher outputs cached by the tests stay in a folder of their own, never the user's ~/.cache
if "KDPIPE_CACHE" not in os.environ:
    os.environ["KDPIPE_CACHE"] = tempfile.mkdtemp(prefix="kdpipe-test-cache-")
    atexit.register(shutil.rmtree, os.environ["KDPIPE_CACHE"], True)

# CI sets KDPIPE_REQUIRE_APPS=1 (.ci/run): there the Node.js and browser checks must run, and one that
# would skip for want of node, apps/node_modules or chromium (apps/setup.sh) fails instead.
REQUIRE_APPS = os.environ.get("KDPIPE_REQUIRE_APPS") == "1"
APPS_MISSING = "run apps/setup.sh"  # every skip for want of the apps says this


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_APPS and report.skipped and APPS_MISSING in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = (f"{report.longrepr}\nKDPIPE_REQUIRE_APPS=1: the Node.js and browser checks must run here, "
                           "not skip")


TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {"source": "builtin:digits", "batch_size": 64, "limit": 600},
    "teacher": {
        "model": "builtin:cnn",
        "params": {"channels": [8], "hidden": 64, "dropout": 0.0},
        "train": {"epochs": 2, "lr": 0.01},
    },
    "student": {"model": "builtin:mlp", "params": {"hidden": [64]}},
    "distill": {"epochs": 2, "lr": 0.01},
    "prune": {"ratio": 0.5, "finetune": {"epochs": 1, "lr": 0.005}},
    "quantize": {
        "variants": ["dynamic", "static", "fp16"],
        "calibration": ["minmax", "entropy"],
        "calibration_samples": 64,
    },
    "benchmark": {"batch_sizes": [1, 8], "warmup": 1, "min_seconds": 0.01, "min_runs": 2},
}


def write_config(folder: Path, overrides: dict | None = None, name: str = "config.yaml") -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["output_dir"] = str(folder / "run")
    for key, value in (overrides or {}).items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return write_config(tmp_path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One complete `kdpipe all` on the tiny config; returns the run folder."""
    from kdpipe.cli import main

    folder = tmp_path_factory.mktemp("tiny_run")
    cfg = write_config(folder)
    assert main(["all", str(cfg), "-q"]) == 0
    return folder / "run"


@pytest.fixture(scope="session")
def lm_runs(tmp_path_factory) -> dict:
    """A tiny causal LM and a tiny masked LM through every stage (tests/tasks/test_language_model.py's
    config: every quantized variant, generation timed), shared by the task's tests and the apps'."""
    from tests.tasks.test_language_model import lm_config

    out = {}
    for task in ("causal-lm", "masked-lm"):
        folder = tmp_path_factory.mktemp(task)
        assert run_cli("all", str(lm_config(folder, task)), "-q") == 0
        out[task] = folder / "run"
    return out


def run_cli(*args: str) -> int:
    from kdpipe.cli import main

    return main(list(args))


def int8_weight_max(path) -> int:
    """The largest |int8 weight| in an ONNX file: at most 64 where weights are 7-bit (quantize.reduce_range)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and t.dims]
    assert weights, f"{path} has no int8 weights"
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)

"""What the benchmark scripts share: a config path with kdpipe's `--set` overrides, and the config's
task and data as the pipeline loads them. Run the scripts as `python benchmarks/NAME.py` (this
folder is then on the import path)."""

from __future__ import annotations

import argparse

from kdpipe.config.load import load_config


def config_parser() -> argparse.ArgumentParser:
    """A parser taking the config file and any number of `--set KEY=VALUE` overrides."""
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    return ap


def load(args):
    """The config with its overrides, its task and its data."""
    from kdpipe.tasks import load_data, task_for

    cfg = load_config(args.config, args.overrides)
    return cfg, task_for(cfg), load_data(cfg)

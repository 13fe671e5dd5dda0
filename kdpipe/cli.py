"""Command line: `kdpipe all CONFIG`, one command per stage, show-config and predict.

Thin: every command loads the config and hands over to pipeline.runner. A KdpipeError becomes one
line on stderr and exit code 2; nothing else a user does should show a traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import traceback
from pathlib import Path

import click

from kdpipe import __version__
from kdpipe.errors import KdpipeError, debug_enabled

STAGE_HELP = {
    "distill": "Train (or load) the teacher, the KD student and the no-KD baseline.",
    "prune": "Structured pruning of the student plus a KD recovery fine-tune.",
    "quantize": "onnxruntime int8 (dynamic, static QDQ) and fp16 variants, accuracy measured in onnxruntime.",
    "export": "fp32 ONNX of every model, parity against torch, and the deployable bundle.",
    "benchmark": "Latency and throughput per variant, provider and batch size.",
    "report": "Write report.json, report.md and report.html.",
}


def _common(f):
    f = click.argument("config", type=click.Path(dir_okay=False, path_type=Path))(f)
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config value, e.g. --set distill.epochs=5 (repeatable).")(f)
    f = click.option("--force", is_flag=True, help="Rerun the stage(s) even if their results are current.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="No progress bars or status lines.")(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kdpipe")
@click.option("--debug", is_flag=True, help="On an error, also print the traceback behind it (or set KDPIPE_DEBUG=1).")
def cli(debug):
    """kdpipe: distill a big model into a small one, prune, quantize, export to ONNX, benchmark, report."""
    if debug:
        os.environ["KDPIPE_DEBUG"] = "1"


def _load(config: Path, overrides, quiet: bool):
    """The config, with the quiet setting and the config's folder importable for python: models."""
    from kdpipe.config.load import load_config
    from kdpipe.progress import set_quiet

    set_quiet(quiet)
    cfg = load_config(config, overrides)  # before torch's import (2-3 s): a mistyped key is reported at once
    factory_roots(config)  # python:module:factory beside the config
    return cfg


def _run(config: Path, overrides, force: bool, quiet: bool, stages: list[str] | None):
    """Runs `stages` (None: every stage) of the config."""
    cfg = _load(config, overrides, quiet)
    from kdpipe import distributed
    from kdpipe.pipeline import runner
    from kdpipe.stages import ORDER

    distributed.init()  # no-op unless launched by torchrun / accelerate launch
    # what a hint to run another stage must repeat so that it runs on the same folder and config
    hint = _hint(config, overrides)
    return cfg, runner.run(cfg, stages or ORDER, force=force, config_hint=hint, quiet=quiet)


@cli.command("all")
@_common
def all_cmd(config, overrides, force, quiet):
    """Run distill -> prune -> quantize -> export -> benchmark -> report."""
    cfg, store = _run(config, overrides, force, quiet, None)
    if not _is_main():
        return
    from kdpipe.report.render import render_terminal

    report = json.loads((store.root / "report" / "report.json").read_text())
    render_terminal(report)
    click.echo(f"Report: {store.root / 'report' / 'report.html'} (also report.md, report.json)")


def _stage_command(name: str):
    @_common
    def command(config, overrides, force, quiet):
        cfg, store = _run(config, overrides, force, quiet, [name])
        if not _is_main():
            return
        if name == "report":
            from kdpipe.report.render import render_terminal

            render_terminal(json.loads((store.root / "report" / "report.json").read_text()))
        click.echo(f"{name}: results in {store.root / name}")

    command.__doc__ = STAGE_HELP[name] + " Runs on what earlier stages left in the run folder."
    return cli.command(name)(command)


for _name in STAGE_HELP:
    _stage_command(_name)


def _is_main() -> bool:
    from kdpipe import distributed

    return distributed.is_main()


@cli.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--shard", metavar="I/N", help="Run only every N-th point, starting at the I-th (split a sweep between "
                                             "processes or machines sharing the folder).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def sweep_cmd(config, overrides, shard, quiet):
    """Train every student size of sweep.students with and without KD over sweep.seeds (and
    sweep.label_fractions), one shared teacher; write sweep.md, sweep.json and sweep.html with plots.
    Rerun the same command to continue a stopped sweep: finished points are skipped."""
    cfg = _load(config, overrides, quiet)
    from kdpipe.pipeline.sweep import parse_shard, run_sweep

    out = run_sweep(cfg, shard=parse_shard(shard), quiet=quiet)
    if out is not None:
        click.echo(out.read_text(), nl=False)
        click.echo(f"Sweep: {out.parent / 'sweep.html'} (also sweep.md, sweep.json)")


@cli.command("init")
@click.option("--teacher", help="The teacher: hf:FOLDER (or hf:HUB_ID), hf-config:TYPE, builtin:NAME, "
                                "torchvision:NAME or python:module:factory.")
@click.option("--data", "data_source", help="The data: csv:PATH, jsonl:PATH, text:PATH, folder:PATH (a sub-folder "
                                            "of images per class), npz:PATH, hf-disk:PATH or builtin:NAME.")
@click.option("--task", type=click.Choice(["classification", "embedding", "causal-lm", "masked-lm"]),
              help="Default: inferred from the data and the teacher.")
@click.option("--student", help="Default: derived from the teacher (a layer subset of a transformer, a narrower CNN).")
@click.option("--teacher-weights", type=click.Path(dir_okay=False), help="A trained teacher's checkpoint "
                                                                         "(.safetensors, or .pt/.pth of a state dict) "
                                                                         "for a builtin:, python: or torchvision: "
                                                                         "teacher: it is then not trained here.")
@click.option("--name", help="The run's name (default: the data file's name).")
@click.option("--label-column", help="Default: a column named label, class, category, target or y.")
@click.option("--text-column", help="Default: a column named text (or the longest text column).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the config "
                                                                                      "(default: NAME.yaml here).")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@click.option("--no-estimate", is_flag=True, help="Skip timing a few training steps for the wall-time estimate.")
def init_cmd(teacher, data_source, task, student, teacher_weights, name, label_column, text_column, output, force,
             no_estimate):
    """Write a commented config for your own teacher and data: the task, a student and settings that
    suit them, inferred and explained; then the wall time `kdpipe all` will take here, estimated from a
    few timed training steps. Asks for --teacher and --data only at a terminal."""
    from kdpipe.config.defaults import with_family_defaults
    from kdpipe.config.load import format_validation_error
    from kdpipe.config.schema import Config
    from kdpipe.errors import ConfigError
    from kdpipe.init.writer import build, render
    from kdpipe.io import atomic_write_bytes

    interactive = sys.stdin.isatty()
    for flag, value in (("--teacher", teacher), ("--data", data_source)):
        if not value and not interactive:
            raise ConfigError(f"kdpipe init: {flag} is needed (see kdpipe init --help)")
    teacher = teacher or click.prompt("Teacher (hf:FOLDER, hf-config:TYPE, builtin:NAME, python:module:factory)")
    data_source = data_source or click.prompt("Data (csv:PATH, jsonl:PATH, text:PATH, folder:PATH, npz:PATH, ...)")
    raw, facts = build(teacher, data_source, task, student, name, label_column, text_column, teacher_weights)
    from pydantic import ValidationError

    try:
        cfg = Config.model_validate(with_family_defaults(raw))
    except ValidationError as e:
        raise ConfigError(f"kdpipe init: the inferred config does not hold: {format_validation_error(e)}") from None
    path = output or Path(f"{raw['name']}.yaml")
    if path.exists() and not force:
        raise ConfigError(f"kdpipe init: {path} exists; choose another with -o or replace it with --force")
    atomic_write_bytes(path, render(raw, facts, path).encode())
    click.echo(f"Wrote {path}:")
    for what, why in facts:
        click.echo(f"  {what}: {why}")
    if not no_estimate:
        from kdpipe.init.estimate import estimate, fmt_duration

        click.echo("Timing a few training steps for an estimate ...")
        factory_roots(path)
        total, parts = estimate(cfg)
        bound = "at most" if cfg.distill.epochs == "auto" else "about"  # auto: the cap, stopping earlier
        click.echo(f"Estimated wall time of `kdpipe all` on this machine: {bound} {fmt_duration(total)} ("
                   + ", ".join(f"{k} {fmt_duration(v)}" for k, v in parts if v >= 1) + ")")
    click.echo(f"Next: kdpipe check {path}   (every pre-flight check, seconds)\n      kdpipe all {path}")


def factory_roots(config: Path) -> None:
    """python:module:factory models are looked up beside the config too."""
    from kdpipe.models import factory

    factory.EXTRA_IMPORT_ROOTS[:] = [config.resolve().parent]


def _hint(config: Path, overrides) -> str:
    """What a command line that names this config must repeat to run on the same folder and config."""
    return shlex.join([str(config), *(a for o in overrides for a in ("--set", o))])


@cli.command("check")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
def check_cmd(config, overrides):
    """Every pre-flight check of `kdpipe all` (the config, the data files and columns, teacher and
    student built and run on two samples, labels against outputs, the output folder) and what it would
    run, in seconds: nothing is trained and nothing written in the run folder."""
    cfg = _load(config, overrides, quiet=False)
    from kdpipe.pipeline import runner

    for line in runner.check(cfg):
        click.echo(line)
    click.echo(f"ok: {config} is ready; run `kdpipe all {_hint(config, overrides)}`")


@cli.command("show-config")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
def show_config(config, overrides):
    """Print the resolved config: every value, with where it came from (the config, the model family's
    defaults, kdpipe's defaults); keys this task and model family do not read are left out."""
    from kdpipe.config.defaults import show
    from kdpipe.config.load import load_config, read_raw

    click.echo(show(load_config(config, overrides), read_raw(config, overrides)), nl=False)


@cli.command("predict")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--text", "texts", multiple=True, metavar="TEXT", help="Text bundles: a text to run (repeatable).")
@click.option("--top-k", type=click.IntRange(1), default=None,
              help="Classifiers: the k most likely labels with their probabilities (default 1; 3 with --json). "
                   "Causal LMs: sample from the k most likely tokens.")
@click.option("--max-new-tokens", type=click.IntRange(1), default=20, show_default=True,
              help="Causal LMs: tokens to generate (fewer at the end-of-text token).")
@click.option("--temperature", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Causal LMs: 0 is greedy (the most likely token each step); above 0 samples.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Causal LMs: sample from the fewest tokens whose probabilities reach p.")
@click.option("--seed", type=int, default=None, help="Causal LMs: the sampling seed (the same seed, the same text).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input sample: label, probability, "
                                                        "top (the k most likely) and logits, as the Node app prints.")
@click.option("--strict", is_flag=True, help="Refuse images of another size or colour mode than the model's, "
                                             "instead of converting them with a note.")
@click.option("--text-column", default=None, help="Text bundles, .csv/.tsv/.jsonl inputs: the column holding the texts "
                                                    "(default: the one the bundle was trained with).")
def predict_cmd(bundle, inputs, texts, top_k, max_new_tokens, temperature, top_p, seed, as_json, strict, text_column):
    """Run a bundle on inputs: files, `-` for stdin, or --text. Classifiers of arrays: .npz (array x,
    shaped like the model's input or as flat rows), CSV (feature columns; a header is optional), JSON
    ({"inputs": [...]}) or image files; text bundles: .txt (one text a line), .csv / .tsv (the text
    column the bundle was trained with, or --text-column; a label column is ignored), .jsonl ("text"
    field) or JSON ({"texts": [...]}). Prints the label and its probability (classifiers), the embedding
    (embedders), the perplexity and a continuation generated with the KV cache (causal-lm: greedy,
    or sampled with --temperature, --top-k, --top-p, --seed) or the text with its masks filled
    (masked-lm). Needs onnxruntime (and tokenizers for text), not torch."""
    from kdpipe.bundle.folder import load_bundle, read_inputs, read_texts
    from kdpipe.bundle.generate import Sampling
    from kdpipe.bundle.predict import line, records, takes_text
    from kdpipe.errors import DataError

    if not inputs and not texts:
        raise DataError("predict: give input files, - to read stdin, or --text \"...\" (text bundles)")
    sess, info = load_bundle(bundle)
    is_text = takes_text(info)
    if texts and not is_text:
        raise DataError(f"predict --text: {bundle} takes arrays, not text; give .npz, .csv, .json or image files")
    told: set[str] = set()  # image conversions already noted
    stdin = None
    sources = [("--text", list(texts))] if texts else []
    for path in inputs:
        if str(path) == "-":
            stdin = stdin if stdin is not None else sys.stdin.buffer.read()
            sources.append(("stdin", read_texts(path, stdin.decode("utf-8", "replace")) if is_text
                            else read_inputs(Path("stdin"), info, strict, told, data=stdin)))
        else:
            sources.append((str(path), read_texts(path, None, info, text_column) if is_text
                            else read_inputs(path, info, strict, told)))
    causal = info.get("task") == "causal-lm"
    sampling = Sampling(max_new_tokens, temperature, (top_k or 0) if causal else 0, top_p, seed)
    for name, data in sources:
        for i, r in enumerate(records(bundle, sess, info, data, top_k or (3 if as_json else 1), sampling)):
            click.echo(json.dumps({"input": name, "index": i, **r}) if as_json else f"{name}[{i}]\t{line(r)}")


@cli.command("evaluate")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.argument("data")
@click.option("--vs", "other", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A second bundle scored on the same samples, compared with the paired 95% interval (an embedding "
                   "bundle: the one it is measured against).")
@click.option("--text-column", default=None, help="Default: the one the bundle was trained with.")
@click.option("--label-column", default=None, help="Default: the one the bundle was trained with (label).")
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
def evaluate_cmd(bundle, data, other, text_column, label_column, as_json):
    """Score a bundle on a labelled file the pipeline never saw (csv:, jsonl:, npz:, folder:, text:, or a
    path by its ending): the metric with its 95% interval; for classifiers each class's precision,
    recall and count and the confusion matrix; perplexity for causal LMs. --vs OTHER scores a second
    bundle on the same samples: which is better, with the paired interval. Needs the bundles only."""
    from kdpipe.bundle.evaluate import evaluate, render

    result = evaluate(str(bundle), data, str(other) if other else None, text_column, label_column)
    click.echo(json.dumps(result, indent=2) if as_json else render(result), nl=as_json)


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="kdpipe", standalone_mode=False)
    except KdpipeError as e:
        if debug_enabled():
            traceback.print_exception(e)
        click.echo(f"kdpipe: error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("kdpipe: interrupted; finished stages are kept, rerun the same command to continue", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("kdpipe: interrupted; finished stages are kept, rerun the same command to continue", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    finally:
        # never imported: no process group to close (and importing it would import torch for --help)
        distributed = sys.modules.get("kdpipe.distributed")
        if distributed is not None:
            distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

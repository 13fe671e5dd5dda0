"""kdpipe.config.defaults: defaults by model family, provenance in show-config, and `kdpipe check`."""

import subprocess
import sys

import yaml

from kdpipe.config.defaults import family_of, show
from kdpipe.config.load import load_config, read_raw
from kdpipe.config.schema import Config
from tests.conftest import write_config


def _cfg(tmp_path, text, overrides=()):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p, load_config(p, list(overrides)), read_raw(p, list(overrides))


def test_a_family_is_read_off_the_teacher_and_the_task():
    assert family_of({"teacher": {"model": "hf:some/folder"}}).startswith("pretrained transformer")
    assert family_of({"teacher": {"model": "hf-config:bert"}}).startswith("transformer from a config")
    assert family_of({"teacher": {"model": "builtin:cnn"}}).startswith("array model")
    assert family_of({}).startswith("array model")
    assert family_of({"task": "causal-lm"}).startswith("transformer from a config")  # the example's small GPT-2
    assert family_of({"teacher": "not a section"}).startswith("array model")  # the validator names that


def test_a_config_naming_teacher_data_and_task_gets_its_familys_settings(tmp_path):
    _, cfg, _ = _cfg(tmp_path, "teacher: {model: 'hf:artifacts/teachers/x', finetune: true}\n"
                               "data: {source: 'csv:t.csv'}\n")
    assert (cfg.distill.lr, cfg.distill.warmup, cfg.distill.epochs, cfg.distill.temperature) == (1e-4, 0.1, 4, 2.0)
    assert cfg.prune.enabled is False and cfg.student.model == "derive:teacher"
    assert cfg.student.params == {"layers": "every_other"} and cfg.teacher.train.lr == 1e-4
    # the array family keeps the global defaults (the MNIST example's)
    _, arrays, _ = _cfg(tmp_path, "data: {source: 'builtin:digits'}\n")
    assert arrays.distill == Config().distill and arrays.prune.enabled is True
    # what the config says wins, and a student it names is not given the family's params
    _, mine, _ = _cfg(
        tmp_path,
        "teacher: {model: 'hf:x'}\nstudent: {model: 'hf-config:bert', params: {hidden_size: 32}}\n"
        "distill: {lr: 0.003}\n",
        ["distill.epochs=2"],
    )
    assert mine.student.params == {"hidden_size": 32} and (mine.distill.lr, mine.distill.epochs) == (0.003, 2)
    assert mine.distill.warmup == 0.1
    # a given teacher that is not fine-tuned keeps kdpipe's teacher.train (it is not read)
    _, given, _ = _cfg(tmp_path, "teacher: {model: 'hf:x'}\ntask: embedding\n")
    assert given.teacher.train == Config().teacher.train and given.distill.lr == 2e-4
    # a language-model task with no teacher gets the example's small models, trained here
    _, lm, _ = _cfg(tmp_path, "task: causal-lm\ndata: {source: 'builtin:pydoc-topics'}\n")
    assert lm.teacher.model == "hf-config:gpt2" and lm.student.params["n_layer"] == 2
    assert (lm.distill.temperature, lm.distill.alpha, lm.export.opset) == (1.0, 0.5, 18)


def test_show_config_says_where_each_value_came_from_and_resolves_nulls(tmp_path):
    path, cfg, raw = _cfg(tmp_path, "name: mine\nteacher: {model: 'hf-config:bert'}\ndistill: {alpha: 0.25}\n")
    text = show(cfg, raw, tmp_path)
    lines = {ln.strip().split(":")[0]: ln for ln in text.splitlines() if "#" in ln and not ln.startswith("#")}
    assert lines["alpha"].endswith("# config")
    assert "\n  lr: 0.001  # transformer from a config (hf-config:) default\n" in text  # distill.lr
    assert "weight_decay: 0.0  # default" in text
    assert f"output_dir: {tmp_path / 'artifacts' / 'mine'}  # default: artifacts/mine" in text
    assert "split_seed: 0  # default: the run's seed" in text
    assert "image_size" not in lines and "vocab_size" in lines  # a text model: no image keys
    assert Config.model_validate(yaml.safe_load(text)).distill == cfg.distill  # still YAML that loads back
    # an image config: no text keys, unless the config sets one
    _, img, raw = _cfg(tmp_path, "data: {source: 'builtin:digits', vocab_size: 500}\n")
    text = show(img, raw)
    assert "  sequence_length:" not in text and "extra_texts:" not in text
    assert "vocab_size: 500  # config; not read for task classification with this model family" in text
    assert "# not read for task classification with this model family (left out): " in text


def test_check_runs_every_preflight_check_and_writes_nothing(tmp_path):
    cfg = write_config(tmp_path)
    r = subprocess.run([sys.executable, "-m", "kdpipe", "check", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "train/validation/test 418/60/122, 10 classes" in r.stdout
    assert "kdpipe all would run: distill (not run yet)" in r.stdout and r.stdout.rstrip().endswith(f"{cfg}`")
    assert not (tmp_path / "run").exists()
    bad = write_config(tmp_path, {"data.source": "csv:nowhere.csv"}, name="bad.yaml")
    r = subprocess.run([sys.executable, "-m", "kdpipe", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "nowhere.csv" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

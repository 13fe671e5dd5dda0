"""Every example config in configs/ runs end to end (`kdpipe all`) with tiny settings."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import APPS_MISSING, run_cli

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
TINY = ["data.limit=400", "teacher.train.epochs=1", "distill.epochs=1", "prune.finetune.epochs=1",
        "quantize.calibration_samples=32", "benchmark.min_seconds=0.01", "benchmark.min_runs=2", "benchmark.warmup=1",
        "benchmark.batch_sizes=[1,4]"]


# Language-model examples: shorter blocks, a small vocabulary and a narrow teacher of the same family.
TINY_LM = ["data.limit=40", "data.sequence_length=32", "data.vocab_size=300", "quantize.calibration_samples=8"]
TINY_TEACHER = {
    "hf-config:gpt2": ["teacher.params={n_layer: 2, n_embd: 32, n_head: 2}"],
    "hf-config:bert": ["teacher.params={num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 2, "
                       "intermediate_size: 64}"],
}

# Examples whose student names layers or widths of the real teacher: the same recipe at the tiny teacher's scale.
TINY_STUDENT = {"embedding-pruned": ["student.params={layers: [0, 1], hidden_size: 16, num_attention_heads: 1, "
                                     "intermediate_size: 32, init: prune}"],
                "embedding": ["student.params={layers: 1}"],  # the tiny teacher has 2 layers
                "text-classification": ["student.params={layers: [1]}"],
                "causal-lm-smollm2": ["student.params={layers: [1]}"]}


def tiny_encoder_folder(path: Path) -> Path:
    """Stands in for a teacher folder an example names (e.g. all-MiniLM-L6-v2): a tiny BERT encoder with
    a tokenizer trained here, saved the way transformers saves one."""
    from transformers import AutoConfig, AutoModel

    from kdpipe.data.registry import load_texts
    from kdpipe.data.text import train_tokenizer

    tok = train_tokenizer(load_texts("builtin:pydoc-paragraphs")[:300], "masked", 300)
    config = AutoConfig.for_model("bert", vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                  pad_token_id=tok.pad_token_id)
    AutoModel.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_decoder_folder(path: Path) -> Path:
    """Stands in for a causal-LM teacher folder an example names (SmolLM2-135M-Instruct): a tiny model of
    its family (Llama, tied embeddings) with a byte-level BPE tokenizer trained here."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from kdpipe.data.registry import load_texts
    from kdpipe.data.text import train_tokenizer

    tok = train_tokenizer(load_texts("builtin:pydoc-paragraphs")[:300], "causal", 300)
    config = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                                  max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_example_config_runs_end_to_end(config, tmp_path):
    import yaml

    raw = yaml.safe_load(config.read_text())
    teacher = raw["teacher"]["model"]
    text = teacher.startswith(("hf:", "hf-config:"))
    extra = TINY_LM + TINY_TEACHER.get(teacher, []) if text else []
    if teacher.startswith("hf:"):  # an example that names a teacher folder: a tiny one of the same kind
        folder = (tiny_decoder_folder if raw.get("task") == "causal-lm" else tiny_encoder_folder)(tmp_path / "teacher")
        extra += [f"teacher.model=hf:{folder}"]
    extra += TINY_STUDENT.get(config.stem, [])
    if raw.get("data", {}).get("other_source"):  # fetched by a script: text that ships with CPython instead
        extra += ["data.other_source=builtin:pydoc-paragraphs"]
    more = raw.get("data", {}).get("extra_texts") or []
    if any(not s.startswith("builtin:") for s in ([more] if isinstance(more, str) else more)):
        extra += ["data.extra_texts=[builtin:stdlib-sentences]"]
    if raw.get("benchmark", {}).get("sequence_lengths"):
        extra += ["benchmark.sequence_lengths=[8,32]"]
    sets = [a for kv in TINY + extra + [f"output_dir={tmp_path / 'run'}"] for a in ("--set", kv)]
    assert run_cli("all", str(config), "-q", *sets) == 0
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert {"teacher", "student"} <= {r["variant"] for r in report["rows"]}
    assert (tmp_path / "run" / "export" / "bundle" / "model.onnx").is_file()
    # The README's Node.js command on the example's bundle, where the apps are installed (apps/setup.sh)
    example = {"default": "mnist-digits.json", "text-classification": "texts.txt"}.get(config.stem)
    apps = Path(__file__).parent.parent / "apps"
    if example:
        if not (shutil.which("node") and (apps / "node_modules").is_dir()):
            pytest.skip(f"the bundle's Node.js check needs node and apps/node_modules: {APPS_MISSING}")
        r = subprocess.run(["node", str(apps / "node" / "classify.mjs"), str(tmp_path / "run" / "export" / "bundle"),
                            str(apps / "examples" / example)], capture_output=True, text=True, timeout=120)
        labels = json.loads((tmp_path / "run" / "export" / "bundle" / "kdpipe.json").read_text())["labels"]
        assert r.returncode == 0 and [line.split("\t")[1] in labels for line in r.stdout.splitlines()] == [True] * 3


def test_the_readmes_own_model_and_data_commands_run_as_written(tmp_path):
    """README.md's "Your own model and data" block, with a tiny transformers folder for the teacher and
    a small labelled CSV (tiny settings added to `kdpipe all` with --set; the rest as written)."""
    import csv
    import re
    import shlex
    import sys

    from kdpipe.data.registry import load_labelled_texts

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"## Your own model and data\n\n```bash\n(.*?)```", readme, re.S).group(1)
    texts, labels = load_labelled_texts("builtin:pydoc-sections", "text", "label")
    with open(tmp_path / "my_texts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(list(zip(texts, labels))[:300])
    with open(tmp_path / "held_out.csv", "w", newline="") as f:  # texts the run never saw, for evaluate
        csv.writer(f).writerows([["text", "label"], *list(zip(texts, labels))[300:360]])
    teacher = tiny_encoder_folder(tmp_path / "model")
    outputs = []
    for line in block.strip().splitlines():
        args = shlex.split(line.split("  #")[0])
        assert args[0] == ".venv/bin/kdpipe"
        args = [a.replace("path/to/model", str(teacher)) for a in args[1:]]
        if args[0] == "all":
            args += [a for kv in TINY + ["teacher.train.epochs=1", "data.sequence_length=32"] for a in ("--set", kv)]
        if args[0] == "init":
            args.append("--no-estimate")
        r = subprocess.run([sys.executable, "-m", "kdpipe", *args], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, (line, r.stderr)
        outputs.append(r.stdout)
    assert (tmp_path / "artifacts" / "my_texts" / "report" / "report.html").is_file()
    report = json.loads((tmp_path / "artifacts" / "my_texts" / "report" / "report.json").read_text())
    assert {"teacher", "student", "baseline", "teacher-int8-dynamic"} <= {x["variant"] for x in report["rows"]}
    assert "held_out.csv: 60 samples; accuracy" in outputs[-2]  # evaluate: the held-out texts scored
    top = outputs[-1].strip().split("\t")
    assert len(top) == 1 + 2 * 3  # --text, then three labels with their probabilities

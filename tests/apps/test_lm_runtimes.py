"""Language-model bundles beyond Python: every variant of a tiny causal LM (fp32, fused fp32, int8 dynamic
plain and fused, int8 static, fp16, int4, the quantized teacher, and a random model with wide weights
whose greedy tokens vary) generates in Node.js (apps/node/generate.mjs) and in headless Chromium (the
page apps/web/) with its KV cache the tokens Python's onnxruntime generates; masked-LM variants fill
[MASK] as Python does. kdpipe.json's "runtimes" claims are checked against what ran, and every
operator compat.LM_OPS counts as verified ran here. They skip where node, apps/node_modules or
chromium is missing."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.apps.test_runtimes import APPS, HAVE_MODULES, NODE, _browser, _site, _variants, needs_chromium, needs_node

PROMPTS = ["The for statement", "A class defines", "print"]
NEW = 8


@pytest.fixture(autouse=True)
def _needs_node():
    if not (NODE and HAVE_MODULES):
        pytest.skip("needs node and apps/node_modules: run apps/setup.sh")


def _wide(run: Path, into: Path) -> Path:
    """The run's bundle with a random GPT-2 of the same sizes and wide weights: greedy tokens that vary,
    so that equal tokens mean equal arithmetic (a 1-epoch model repeats one token)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from kdpipe.data.splits import Split
    from kdpipe.models.hf import HFModule
    from kdpipe.tasks import TASKS
    from kdpipe.tasks.hf_data import TextData

    folder = into / f"{run.parent.name}-random-wide"
    shutil.copytree(run / "export" / "bundle", folder)
    torch.manual_seed(0)
    config = json.loads((folder / "config.json").read_text())
    hf = GPT2LMHeadModel(GPT2Config(**{**config, "initializer_range": 0.3})).eval()
    hf.save_pretrained(into / "wide-hf")
    x = np.random.default_rng(0).integers(0, config["vocab_size"], (4, 16))
    TASKS["causal-lm"].export_onnx(HFModule(hf, False, None).eval(), into / "wide-hf", folder / "model.onnx", 18,
                                   TextData(Split(x, x), Split(x, x), Split(x, x), None, 16, ""))
    return folder


def _python(folder: Path, task: str) -> list[list[int]]:
    """Python's onnxruntime: greedy ids after each prompt (causal), or each text's ids with masks filled."""
    from kdpipe.bundle.folder import load_bundle
    from kdpipe.bundle.generate import Generator, Sampling
    from kdpipe.bundle.tokenizer import BundleTokenizer

    sess, info = load_bundle(folder)
    tok, gen = BundleTokenizer(folder, info), Generator(sess)
    if task == "causal-lm":
        return [list(gen.generate(tok.ids(p, special=False, truncate=False), Sampling(max_new_tokens=NEW),
                                  info["kv_cache"]["eos_token_id"])) for p in PROMPTS]
    out = []
    for text in _mask_texts(info):
        ids = tok.ids(text, special=True, truncate=False)
        logits = gen.run(np.asarray([ids], np.int64))[0][0]
        out.append([int(logits[i].argmax()) if t == info["mask_token_id"] else t for i, t in enumerate(ids)])
    return out


def _mask_texts(info: dict) -> list[str]:
    m = info["mask_token"]
    return [f"The for statement iterates over the {m} of a sequence.", f"A {m} defines new {m}."]


def _texts(folder: Path, task: str) -> dict:
    return {"texts": PROMPTS if task == "causal-lm" else _mask_texts(json.loads((folder / "kdpipe.json").read_text()))}


def _node(folder: Path, inputs: Path) -> list[list[int]]:
    import subprocess

    r = subprocess.run([NODE, str(APPS / "node" / "generate.mjs"), str(folder), str(inputs), "--json",
                        "--max-new-tokens", str(NEW)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(line)["ids"] for line in r.stdout.splitlines()]


def _compare(results: dict, runtime: str) -> None:
    """Every variant generates Python's tokens; kdpipe.json says it runs there; LM_OPS all ran."""
    from kdpipe.runtime.compat import LM_OPS, op_types, runtimes

    seen, unclaimed = set(), set()
    for folder, (got, want) in results.items():
        assert got == want, f"{folder.name} in {runtime}: {got} != Python's {want}"
        unclaimed |= set(runtimes(folder / "model.onnx")[runtime].get("not_verified_ops", []))
        seen |= op_types(folder / "model.onnx")
    assert not unclaimed, f"every LM variant ran in {runtime}, but kdpipe.json does not say so: add " \
                          f"{sorted(unclaimed)} to kdpipe/runtime/compat.py LM_OPS"
    assert len({f.name for f in results if "random-wide" in f.name}) == 1
    assert len(results) >= 12
    unmeasured = LM_OPS - seen
    assert not unmeasured, f"compat.LM_OPS lists operators no test ran in {runtime}: {sorted(unmeasured)}"


@needs_node
def test_every_lm_variant_generates_pythons_tokens_in_node(lm_runs, tmp_path):
    results = {}
    for task, run in lm_runs.items():
        folders = _variants(run, tmp_path) + ([_wide(run, tmp_path)] if task == "causal-lm" else [])
        for folder in folders:
            inputs = tmp_path / f"{folder.name}.json"
            inputs.write_text(json.dumps(_texts(folder, task)))
            results[folder] = (_node(folder, inputs), _python(folder, task))
    _compare(results, "onnxruntime-node")


@needs_chromium
def test_every_lm_variant_generates_pythons_tokens_in_chromium(lm_runs, tmp_path):
    root = _site(tmp_path)
    results = {}
    for task, run in lm_runs.items():
        folders = _variants(run, root) + ([_wide(run, root)] if task == "causal-lm" else [])
        inputs = tmp_path / f"{task}.json"
        inputs.write_text(json.dumps(_texts(folders[0], task)))
        pages = _browser(root, *[a for f in folders for a in ("--bundle", f"/{f.name}")], "--inputs", str(inputs),
                         "--new-tokens", str(NEW))
        for folder, page in zip(folders, pages):
            assert page["info"] and not page["errors"], (folder.name, page["errors"])
            assert all("error" not in g for g in page["generated"]), (folder.name, page["generated"])
            if task == "causal-lm":
                assert all(g["tokensPerSecond"] is None or g["tokensPerSecond"] > 0 for g in page["generated"])
            results[folder] = ([g["ids"] for g in page["generated"]], _python(folder, task))
    _compare(results, "onnxruntime-web")


@needs_chromium
def test_a_person_generates_text_on_the_page(lm_runs, tmp_path):
    root = _site(tmp_path)
    (root / "bundle").symlink_to(lm_runs["causal-lm"] / "export" / "bundle")
    shot = tmp_path / "page.png"
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"texts": ["The for statement"]}))
    page = _browser(
        root, "--bundle", "/bundle", "--inputs", str(inputs), "--new-tokens", "12", "--screenshot", str(shot)
    )[0]
    assert not page["errors"] and len(page["generated"][0]["ids"]) >= 1
    assert page["shown"]["text"].startswith("The for statement") and "tokens" in page["shown"]["timing"]
    assert "KV cache: yes" in page["shown"]["timing"]
    assert shot.stat().st_size > 10_000

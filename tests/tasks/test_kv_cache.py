"""Causal LMs export with a KV cache: one graph serves the prompt (an empty past) and each new token;
cached logits equal the whole sequence's, and greedy generation is the same with the cache, without
it, in PyTorch and in optimum's ORTModelForCausalLM. Tiny random models: varied tokens, no training."""

import numpy as np
import pytest
import torch

from kdpipe.bundle.generate import Generator, Sampling, pick
from kdpipe.data.splits import Split
from kdpipe.models.hf import HFModule
from kdpipe.runtime.sessions import input_names, make_session
from kdpipe.tasks import TASKS
from kdpipe.tasks.hf_data import TextData

VOCAB = 300


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64,
                                      initializer_range=0.3))  # wide weights: greedy tokens that vary


def _bert_decoder():
    from transformers import BertConfig, BertLMHeadModel

    return BertLMHeadModel(
        BertConfig(
            num_hidden_layers=2,
            hidden_size=64,
            num_attention_heads=4,
            intermediate_size=128,
            vocab_size=VOCAB,
            is_decoder=True,
            max_position_embeddings=64,
            initializer_range=0.3,
        )
    )


@pytest.fixture(scope="module", params=["gpt2", "bert-decoder"])
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    hf = {"gpt2": _gpt2, "bert-decoder": _bert_decoder}[request.param]().eval()
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    x = np.random.default_rng(0).integers(0, VOCAB, (6, 24)).astype(np.int64)
    data = TextData(Split(x, x), Split(x, x), Split(x, x), None, 24, "")
    model = HFModule(hf, False, None).eval()
    TASKS["causal-lm"].export_onnx(model, folder, folder / "model.onnx", 18, data)
    return request.param, model, folder, x


def test_one_graph_takes_a_past_and_returns_the_present(exported):
    _, _, folder, _ = exported
    sess, _ = make_session(folder / "model.onnx", "cpu")
    names = input_names(sess)
    assert {"input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.1.value"} <= set(
        names
    )
    assert names[[str(n) for n in names].index("past_key_values.0.key")].shape[1:4:2] == (4, 16)
    assert {"present.0.key", "present.1.value"} <= {o.name for o in sess.get_outputs()}


def test_whole_text_and_token_by_token_logits_equal_torch(exported):
    _, model, folder, x = exported
    sess, _ = make_session(folder / "model.onnx", "cpu")
    task = TASKS["causal-lm"]
    whole = sess.run(None, task.feeds(input_names(sess), x))[0]  # an empty past
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(whole - ref).max() < 1e-4
    parity = task.cache_parity(sess, x)
    assert parity["cached_max_abs_diff"] < 1e-4 and parity["cached_tokens"] == 24


def test_greedy_tokens_are_the_same_with_and_without_the_cache_and_in_torch(exported):
    _, model, folder, x = exported
    gen = Generator(make_session(folder / "model.onnx", "cpu")[0])
    prompt = x[0, :8].tolist()
    cached = list(gen.generate(prompt, Sampling(max_new_tokens=16)))
    rerun = list(gen.generate(prompt, Sampling(max_new_tokens=16), use_cache=False))
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(16):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    assert cached == rerun == ids[8:]
    assert len(set(cached)) > 2  # a random model's tokens vary: the comparison means something


def test_the_bundle_generates_the_same_greedy_tokens_in_optimum(exported):
    name, _, folder, x = exported
    if name != "gpt2":
        pytest.skip("ORTModelForCausalLM takes the model types optimum knows")
    from optimum.onnxruntime import ORTModelForCausalLM

    model = ORTModelForCausalLM.from_pretrained(folder, use_cache=True, use_io_binding=False)
    prompt = x[1, :8].tolist()
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, 8, dtype=torch.long), do_sample=False,
                         max_new_tokens=12, min_new_tokens=12, pad_token_id=0)
    gen = Generator(make_session(folder / "model.onnx", "cpu")[0])
    assert out[0, 8:].tolist() == list(gen.generate(prompt, Sampling(max_new_tokens=12)))


def test_sampling_follows_its_settings():
    rng = np.random.default_rng(0)
    logits = np.array([3.0, 2.9, 0.0, -1.0, -5.0])
    assert pick(logits, Sampling(), rng) == 0  # greedy
    draws = {pick(logits, Sampling(temperature=1.0, top_k=2), rng) for _ in range(200)}
    assert draws == {0, 1}  # only the two most likely
    assert {pick(logits, Sampling(temperature=1.0, top_p=0.3), rng) for _ in range(50)} == {0}
    seeded = [pick(logits, Sampling(temperature=5.0), np.random.default_rng(7)) for _ in range(3)]
    assert len(set(seeded)) == 1  # the same seed, the same draw


def test_the_bundle_generates_the_same_greedy_tokens_in_onnxruntime_genai(exported):
    """onnxruntime-genai (the kdpipe[genai] extra) loads the folder by its genai_config.json."""
    import json

    og = pytest.importorskip("onnxruntime_genai")
    from kdpipe.tasks.hf_export import genai_config

    _, model, folder, x = exported
    config = json.loads((folder / "config.json").read_text())
    names = input_names(folder / "model.onnx")
    (folder / "genai_config.json").write_text(json.dumps(genai_config(config, names, eos=VOCAB - 1)))
    genai = og.Model(str(folder))
    params = og.GeneratorParams(genai)
    prompt = x[2, :8].tolist()
    params.set_search_options(max_length=8 + 12)
    g = og.Generator(genai, params)
    g.append_tokens([prompt])
    tokens = []
    while not g.is_done():
        g.generate_next_token()
        tokens.append(int(g.get_next_tokens()[0]))
    ours = list(Generator(make_session(folder / "model.onnx", "cpu")[0]).generate(prompt, Sampling(max_new_tokens=12),
                                                                                   eos_id=VOCAB - 1))
    assert tokens == ours


def test_int4_quantizes_every_weight_matrix_and_embedding_of_the_cached_graph(exported, tmp_path):
    """A tied output layer stored once reads the embedding through a Transpose: folded first, so the
    output layer is int4 too and no fp32 copy of the table stays."""
    import onnx

    from kdpipe.quantization.quantizers import Int4, int4_weight_only

    name, _, folder, x = exported
    out = tmp_path / "int4.onnx"
    n = int4_weight_only(folder / "model.onnx", out, Int4())
    graph = onnx.load(str(out)).graph
    ops = [node.op_type for node in graph.node]
    assert n == ops.count("MatMulNBits") + ops.count("GatherBlockQuantized") >= 9
    assert "MatMul" not in {node.op_type for node in graph.node if any(i.endswith("weight") for i in node.input)}
    assert out.stat().st_size < 0.35 * (folder / "model.onnx").stat().st_size  # 4 bits and a scale a block of 32
    logits, fp32 = (_logits(path, x) for path in (out, folder / "model.onnx"))
    assert np.isfinite(logits).all() and logits.shape == (6, 24, VOCAB)
    # Within a bound of the fp32 graph. Random weights of a tiny model are int4's worst case (measured
    # 2026-12-08: 41% / 51% relative error, 56% / 45% of the next-token answers kept, gpt2 / bert); a
    # broken int4 (a scale's sign, a block's offset, weights read transposed) keeps about 1 in 300
    assert np.linalg.norm(logits - fp32) / np.linalg.norm(fp32) < 0.7
    assert (logits.argmax(-1) == fp32.argmax(-1)).mean() > 0.3


def _logits(path, x) -> np.ndarray:
    sess, _ = make_session(path, "cpu")
    return sess.run(None, TASKS["causal-lm"].feeds(input_names(sess), x))[0]

import json

import numpy as np
import pytest

from kdpipe.data.registry import load_texts
from kdpipe.data.text import IGNORE, mask_tokens, pack, train_tokenizer
from kdpipe.errors import DataError


@pytest.fixture(scope="module")
def pydoc():
    return load_texts("builtin:pydoc-topics")


def test_pydoc_topics_ship_with_python(pydoc):
    assert len(pydoc) > 50 and sum(map(len, pydoc)) > 100_000


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_locally_trained_tokenizer_round_trips_and_saves(pydoc, kind, tmp_path):
    from transformers import AutoTokenizer

    tok = train_tokenizer(pydoc[:20], kind, vocab_size=500)
    assert 200 < len(tok) <= 500
    text = "def f(x): return x + 1"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    decoded = tok.decode(ids)
    assert decoded == text if kind == "causal" else decoded.replace(" ", "") == text.lower().replace(" ", "")
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids


def test_pack_makes_full_blocks_of_real_tokens(pydoc):
    tok = train_tokenizer(pydoc[:20], "causal", vocab_size=400)
    blocks = pack(pydoc[:5], tok, 32, tok.eos_token_id)
    assert blocks.shape[1] == 32 and blocks.dtype == np.int64 and (blocks < len(tok)).all()
    with pytest.raises(DataError, match="fewer than one block"):
        pack(["hi"], tok, 4096, None)


def test_masking_targets_only_chosen_non_special_positions(pydoc):
    tok = train_tokenizer(pydoc[:20], "masked", vocab_size=400)
    ids = pack(pydoc[:10], tok, 64, tok.sep_token_id)
    inputs, labels = mask_tokens(ids, tok, 0.15, np.random.default_rng(0))
    chosen = labels != IGNORE
    assert 0.10 < chosen.mean() < 0.20
    assert (labels[chosen] == ids[chosen]).all() and (inputs[~chosen] == ids[~chosen]).all()
    assert 0.7 < (inputs[chosen] == tok.mask_token_id).mean() < 0.9
    assert not chosen[np.isin(ids, tok.all_special_ids)].any()


def test_jsonl_and_csv_text_columns(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"body": f"line {i}"}) for i in range(3)))
    assert load_texts(f"jsonl:{tmp_path / 'a.jsonl'}", "body") == ["line 0", "line 1", "line 2"]
    with pytest.raises(DataError, match="no string field 'text'"):
        load_texts(f"jsonl:{tmp_path / 'a.jsonl'}")
    (tmp_path / "b.csv").write_text("text,label\nhello,1\nworld,0\n")
    assert load_texts(f"csv:{tmp_path / 'b.csv'}") == ["hello", "world"]


def test_trained_encoder_tokenizer_is_the_same_on_every_run():
    """tokenizers' WordPieceTrainer gave a different vocabulary per process (hash-map order); the
    encoder tokenizer must not."""
    import subprocess
    import sys

    code = ("import hashlib, json; from kdpipe.data.registry import load_texts; "
            "from kdpipe.data.text import train_tokenizer; "
            "t = train_tokenizer(load_texts('builtin:pydoc-topics'), 'masked', 300); "
            "print(hashlib.md5(json.dumps(t.get_vocab(), sort_keys=True).encode()).hexdigest())")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    runs = {p.communicate()[0] for p in procs}  # three processes at once: each has its own hash-map seeds
    assert all(p.returncode == 0 for p in procs) and len(runs) == 1


def test_pydoc_sections_are_labelled_paragraphs():
    from kdpipe.data.registry import load_labelled_texts

    texts, labels = load_labelled_texts("builtin:pydoc-sections", "text", "label")
    assert len(texts) == len(labels) > 1000
    assert set(labels) == {"statements", "expressions", "data-model", "built-in-types"}


def test_stdlib_sentences_are_a_bigger_offline_corpus_of_prose():
    from kdpipe.data.registry import load_texts

    a, b = load_texts("builtin:stdlib-sentences"), load_texts("builtin:pydoc-sentences")
    assert len(a) > 3 * len(b) and len(set(a) & set(b)) < len(a) / 100  # other documents than pydoc's
    assert all(len(s.split()) >= 6 and ">>>" not in s for s in a)
    assert a == load_texts("builtin:stdlib-sentences")  # the same on every call


def test_trim_padding_cuts_after_the_longest_text_and_leaves_other_inputs_alone():
    from kdpipe.data.splits import trim_padding

    ids = np.array([[5, 6, 7, 0, 0, 0], [5, 6, 0, 0, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    x = np.stack([ids, mask], 1)
    assert trim_padding(x).shape == (2, 2, 3) and trim_padding(x[1:]).shape == (1, 2, 2)
    np.testing.assert_array_equal(trim_padding(x)[:, 0], ids[:, :3])
    assert trim_padding(np.zeros((1, 2, 4), np.int64)).shape == (1, 2, 1)  # no real token: one column
    images = np.zeros((2, 2, 6), np.float32)
    assert trim_padding(images) is images

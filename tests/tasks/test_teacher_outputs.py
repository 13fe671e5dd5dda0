"""The teacher's outputs kept on disk by content (kdpipe.tasks.teacher_outputs): read back only for the
same teacher and the same inputs, never an error when the cache cannot be used."""

import numpy as np
import pytest
import torch

from kdpipe.tasks.teacher_outputs import cache_dir, cached, model_digest
from tests.tasks.test_text_tasks import text_config

pytestmark = pytest.mark.fast  # runs no pipeline


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDPIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "teacher-outputs"


def counting(fn):
    calls = []

    def compute(x):
        calls.append(len(x))
        return fn(x)

    return compute, calls


def test_the_second_call_reads_what_the_first_computed(cache):
    x = np.arange(24, dtype=np.int64).reshape(4, 6)
    compute, calls = counting(lambda a: a.astype(np.float32) * 0.5)
    first, hit1 = cached(compute, x, "teacher-a")
    second, hit2 = cached(compute, x, "teacher-a")
    assert (hit1, hit2) == (False, True) and calls == [4]
    np.testing.assert_array_equal(first, second)
    assert len(list(cache.glob("*.npy"))) == 1 and not list(cache.glob("*.tmp"))


def test_another_teacher_or_other_inputs_miss(cache):
    x = np.arange(24, dtype=np.int64).reshape(4, 6)
    compute, calls = counting(lambda a: a.astype(np.float32))
    cached(compute, x, "teacher-a")
    assert not cached(compute, x, "teacher-b")[1]
    y = x.copy()
    y[3, 5] = 0
    assert not cached(compute, y, "teacher-a")[1]
    assert not cached(compute, x.reshape(6, 4), "teacher-a")[1]
    assert calls == [4, 4, 4, 6]


def test_off_computes_every_time_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KDPIPE_CACHE", "off")
    assert cache_dir() is None
    compute, calls = counting(lambda a: a.astype(np.float32))
    x = np.ones((2, 3), dtype=np.int64)
    assert not cached(compute, x, "t")[1] and not cached(compute, x, "t")[1]
    assert calls == [2, 2]


def test_a_damaged_or_unwritable_cache_only_costs_time(cache, monkeypatch):
    x = np.ones((3, 2), dtype=np.int64)
    compute, calls = counting(lambda a: a.astype(np.float32) + 1)
    cached(compute, x, "t")
    (path,) = cache.glob("*.npy")
    path.write_bytes(b"not an array")
    y, hit = cached(compute, x, "t")
    assert not hit and calls == [3, 3]
    np.testing.assert_array_equal(y, np.full((3, 2), 2.0, dtype=np.float32))
    blocker = cache.parent.parent / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("KDPIPE_CACHE", str(blocker))  # a file where the folder should be
    assert not cached(compute, x, "t")[1]


def test_the_digest_follows_every_weight_and_the_config():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    before = model_digest(model, "cfg")
    assert model_digest(model, "cfg") == before and model_digest(model, "other cfg") != before
    with torch.no_grad():
        model[1].bias[0] += 1e-6
    assert model_digest(model, "cfg") != before


def test_an_embedding_task_reads_its_teachers_embeddings_back(tmp_path, cache, monkeypatch):
    """A second load (a rerun, a stage run alone) embeds nothing and gets the same targets; a teacher
    built with another seed is another teacher."""
    import kdpipe.evaluation.scoring
    from kdpipe.config.load import load_config
    from kdpipe.tasks import Embedding

    path = text_config(tmp_path, "embedding", **{"data.extra_texts": "builtin:stdlib-sentences",
                                                  "data.extra_texts_max": 40})
    passes = []
    original = kdpipe.evaluation.scoring.logits
    monkeypatch.setattr(kdpipe.evaluation.scoring, "logits",
                        lambda predict, x, batch_size=64: passes.append(len(x)) or original(predict, x, batch_size))
    cfg = load_config(path)
    first = Embedding().load_data(cfg)
    assert passes and sum(passes) == len(first.train.x) + len(first.val.x) + len(first.test.x)
    passes.clear()
    second = Embedding().load_data(cfg)
    assert passes == []
    for a, b in ((first.train, second.train), (first.val, second.val), (first.test, second.test)):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    other_teacher = load_config(path, overrides=["seed=1", "data.split_seed=0"])  # same texts and split
    third = Embedding().load_data(other_teacher)
    np.testing.assert_array_equal(third.train.x, first.train.x)
    assert passes  # an hf-config teacher built with another seed has other weights: embedded again
    assert not np.allclose(third.train.y, first.train.y)

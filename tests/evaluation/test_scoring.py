"""kdpipe.evaluation.scoring: batched predictions come back in the input's order, padded texts or not."""

import numpy as np
import pytest

from kdpipe.data.splits import text_lengths
from kdpipe.evaluation.scoring import logits

pytestmark = pytest.mark.fast  # runs no pipeline


def test_padded_texts_run_shortest_first_and_come_back_in_order():
    rng = np.random.default_rng(0)
    x = np.zeros((50, 2, 16), dtype=np.int64)
    counts = rng.integers(1, 17, 50)
    for i, n in enumerate(counts):
        x[i, 0, :n], x[i, 1, :n] = rng.integers(1, 100, n), 1
    seen = []

    def predict(batch):  # a text's "embedding": its length and first id
        seen.append(batch[:, 1].sum(-1))
        return np.stack([batch[:, 1].sum(-1), batch[:, 0, 0]], axis=1).astype(np.float32)

    out = logits(predict, x, batch_size=8)
    assert np.array_equal(out[:, 0], counts) and np.array_equal(out[:, 1], x[:, 0, 0])
    assert np.all(np.diff(np.concatenate(seen)) >= 0)  # shortest first
    assert np.array_equal(text_lengths(x), counts)


def test_other_inputs_keep_their_order():
    x = np.random.default_rng(0).normal(size=(20, 2, 5)).astype(np.float32)
    assert text_lengths(x) is None
    seen = []
    logits(lambda b: seen.append(b[:, 0, 0]) or b[:, 0], x, batch_size=6)
    assert np.array_equal(np.concatenate(seen), x[:, 0, 0])

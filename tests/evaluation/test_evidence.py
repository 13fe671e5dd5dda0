"""kdpipe.evaluation.evidence: intervals against closed forms on fixed examples, paired comparisons, agreement."""

import numpy as np
import pytest

from kdpipe.evaluation.evidence import Samples, agreement, interval, paired_drop, samples_needed
from kdpipe.metrics import ACCURACY, PERPLEXITY

pytestmark = pytest.mark.fast  # runs no pipeline


def accuracy_samples(right: np.ndarray) -> Samples:
    return Samples(np.where(right, 100.0, 0.0), np.ones(len(right)), right.astype(np.int64))


def test_an_accuracy_interval_matches_the_normal_approximation():
    right = np.arange(400) % 5 != 0  # 80% of 400
    lo, hi = interval(ACCURACY, accuracy_samples(right))
    half = 1.96 * np.sqrt(0.8 * 0.2 / 400) * 100  # 3.92 points
    assert lo == pytest.approx(80 - half, abs=0.6) and hi == pytest.approx(80 + half, abs=0.6)


def test_a_paired_interval_matches_the_closed_form_of_paired_proportions():
    """b samples right->wrong, c wrong->right out of n: the difference of accuracies is (b - c) / n and its
    variance ((b + c) - (b - c)^2 / n) / n^2 (the Wald interval behind McNemar's test)."""
    n, b, c = 500, 20, 8
    a_right = np.ones(n, bool)
    a_right[:100] = False  # the reference wrong on 100
    o_right = a_right.copy()
    o_right[100:100 + b] = False  # right -> wrong
    o_right[:c] = True  # wrong -> right
    res = paired_drop(ACCURACY, accuracy_samples(a_right), accuracy_samples(o_right))
    assert res["drop"] == pytest.approx((b - c) / n * 100)
    half = 1.96 * np.sqrt((b + c) - (b - c) ** 2 / n) / n * 100
    assert res["ci"][0] == pytest.approx((b - c) / n * 100 - half, abs=0.3)
    assert res["ci"][1] == pytest.approx((b - c) / n * 100 + half, abs=0.3)
    # far narrower than the interval of a difference of two independent accuracies (sqrt(2) x one's)
    sep = interval(ACCURACY, accuracy_samples(a_right))
    assert res["ci"][1] - res["ci"][0] < (sep[1] - sep[0]) * np.sqrt(2) / 2


def test_identical_models_agree_fully_and_their_interval_is_the_exact_binomial_one_not_zero():
    """No answer changed on 50 samples does not show that none would on more: up to 1 - 0.025^(1/50)
    of them could (Clopper-Pearson), 7.1 points, where the bootstrap alone gives [0, 0]."""
    s = accuracy_samples(np.arange(50) % 3 != 0)
    res = paired_drop(ACCURACY, s, s)
    bound = (1 - 0.025 ** (1 / 50)) * 100
    assert res["drop"] == 0.0 and res["ci"] == [pytest.approx(-bound, abs=1e-3), pytest.approx(bound, abs=1e-3)]
    assert agreement(s, s) == 100.0


def test_one_changed_answer_gets_at_least_the_exact_binomial_bound():
    a = np.ones(400, bool)
    o = a.copy()
    o[0] = False  # one answer broken
    res = paired_drop(ACCURACY, accuracy_samples(a), accuracy_samples(o))
    # Clopper-Pearson upper for 1 of 400 is 5.54 units (Poisson: 5.57); the bound is on top of the 1 seen
    assert res["drop"] == pytest.approx(0.25) and res["ci"][1] == pytest.approx(0.25 + (5.54 - 1) / 400 * 100, abs=0.01)
    # many changes: the bootstrap's own interval stands (the floor is below it)
    o2 = np.arange(400) % 4 != 0
    res2 = paired_drop(ACCURACY, accuracy_samples(a), accuracy_samples(o2))
    assert res2["ci"][1] == pytest.approx(25 + 1.96 * np.sqrt(0.25 * 0.75 / 400) * 100, abs=0.6)


def test_perplexity_intervals_are_on_the_metric_and_lower_is_better():
    rng = np.random.default_rng(1)
    nll = rng.normal(30.0, 3.0, 300)
    ref = Samples(nll, np.full(300, 10.0), np.zeros(300, np.int64))
    worse = Samples(nll + 1.0, np.full(300, 10.0), np.zeros(300, np.int64))  # +0.1 nats a token
    lo, hi = interval(PERPLEXITY, ref)
    point = PERPLEXITY.finish(float(nll.sum()), 3000.0)
    assert lo < point < hi
    res = paired_drop(PERPLEXITY, ref, worse)
    assert res["drop"] == pytest.approx(point * (np.exp(0.1) - 1), abs=1e-4) and res["ci"][0] > 0


def test_agreement_of_tokens_counts_only_real_positions_and_of_vectors_is_their_cosine():
    a = Samples(np.zeros(2), np.ones(2), np.array([[1, 2, 3], [4, 5, 6]]))
    b = Samples(np.zeros(2), np.ones(2), np.array([[1, 2, 0], [4, 0, 6]]))
    assert agreement(a, b) == pytest.approx(100 * 4 / 6, abs=0.01)
    assert agreement(a, b, np.array([[True, True, False], [True, False, True]])) == 100.0
    e1 = Samples(np.zeros(2), np.ones(2), np.array([[1.0, 0.0], [0.0, 2.0]], np.float32))
    e2 = Samples(np.zeros(2), np.ones(2), np.array([[1.0, 1.0], [0.0, 1.0]], np.float32))
    assert agreement(e1, e2) == pytest.approx(100 * (np.sqrt(0.5) + 1) / 2, abs=0.01)


def test_samples_needed_scales_with_the_square_of_the_width():
    assert samples_needed(2.0, 300, 1.0) == 1200

import math

import pytest
import torch

from kdpipe.training.lm_losses import lm_kd_loss, token_divergence

pytestmark = pytest.mark.fast  # runs no pipeline


def _probs(logits, t=1.0):
    e = [math.exp(v / t) for v in logits]
    return [v / sum(e) for v in e]


S, T_ = [0.5, 1.5, -1.0], [2.0, 0.0, 0.5]


def _kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b))


@pytest.mark.parametrize("divergence, expected", [
    ("forward_kl", lambda p, q: _kl(p, q)),
    ("reverse_kl", lambda p, q: _kl(q, p)),
    ("jsd", lambda p, q: 0.3 * _kl(p, [0.3 * a + 0.7 * b for a, b in zip(p, q)])
                        + 0.7 * _kl(q, [0.3 * a + 0.7 * b for a, b in zip(p, q)])),
])
def test_divergences_match_hand_computation(divergence, expected):
    p, q = _probs(T_, 2.0), _probs(S, 2.0)
    got = token_divergence(torch.tensor([S]), torch.tensor([T_]), divergence, beta=0.3, temperature=2.0)
    assert got.item() == pytest.approx(expected(p, q), rel=1e-5)


def test_jsd_tends_to_scaled_forward_and_reverse_kl():
    s, t = torch.randn(4, 7), torch.randn(4, 7)
    fwd, rev = token_divergence(s, t, "forward_kl"), token_divergence(s, t, "reverse_kl")
    assert torch.allclose(token_divergence(s, t, "jsd", beta=1e-4) / 1e-4, fwd, rtol=2e-2)
    assert torch.allclose(token_divergence(s, t, "jsd", beta=1 - 1e-4) / 1e-4, rev, rtol=2e-2)


def test_only_real_positions_count_and_t_squared_scales_the_soft_term():
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 2, -100], [0, -100, -100]])
    loss = lm_kd_loss(s, t, labels, temperature=2.0, alpha=1.0)
    real = labels != -100
    expected = token_divergence(s, t, "forward_kl", temperature=2.0)[real].mean() * 4.0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # changing logits at padding positions changes nothing
    s2 = s.clone()
    s2[0, 2] += 10.0
    assert lm_kd_loss(s2, t, labels, alpha=0.5).item() == pytest.approx(lm_kd_loss(s, t, labels, alpha=0.5).item())


def test_alpha_zero_is_next_token_cross_entropy():
    s, t = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    labels = torch.tensor([[3, 1, -100, 5]])
    ce = torch.nn.functional.cross_entropy(s[0], labels[0], ignore_index=-100)
    assert lm_kd_loss(s, t, labels, alpha=0.0).item() == pytest.approx(ce.item(), rel=1e-6)

import math

import pytest
import torch

from kdpipe.training.kd_loss import kd_loss, kd_loss_fn

pytestmark = pytest.mark.fast  # runs no pipeline


def _softmax(xs, t):
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_kd_loss_matches_hand_computation_with_t_squared():
    s, t_logits, T, alpha = [1.0, 2.0, 0.5], [2.0, 0.0, 1.0], 2.0, 0.7
    ps, pt = _softmax(s, T), _softmax(t_logits, T)
    kl = sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps))
    ce = -math.log(_softmax(s, 1.0)[1])
    expected = alpha * T * T * kl + (1 - alpha) * ce
    got = kd_loss(torch.tensor([s]), torch.tensor([t_logits]), torch.tensor([1]), T, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_soft_term_scales_with_t_squared():
    torch.manual_seed(0)
    s, t, y = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    for T in (1.0, 3.0):
        kl = torch.nn.functional.kl_div(torch.log_softmax(s / T, -1), torch.softmax(t / T, -1), reduction="batchmean")
        assert kd_loss(s, t, y, T, 1.0).item() == pytest.approx(T * T * kl.item(), rel=1e-5)


def test_alpha_zero_is_plain_cross_entropy_and_identical_logits_give_zero_soft_loss():
    s, y = torch.randn(3, 4), torch.tensor([0, 3, 1])
    assert kd_loss(s, torch.randn(3, 4), y, 4.0, 0.0).item() == pytest.approx(
        torch.nn.functional.cross_entropy(s, y).item(), rel=1e-6)
    assert kd_loss(s, s.clone(), y, 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (8.0, 0.9), (4.0, 1.0), (2.0, 0.0)])
def test_fused_loss_matches_the_plain_one_in_value_and_gradient(temperature, alpha):
    torch.manual_seed(0)
    s = torch.randn(16, 10, requires_grad=True)
    t, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    plain = kd_loss(s, t, y, temperature, alpha)
    (g_plain,) = torch.autograd.grad(plain, s)
    fused = kd_loss_fn(temperature, alpha)(s, t, y)
    (g_fused,) = torch.autograd.grad(fused, s)
    assert fused.item() == pytest.approx(plain.item(), rel=1e-5, abs=1e-6)
    assert torch.allclose(g_fused, g_plain, atol=1e-6)

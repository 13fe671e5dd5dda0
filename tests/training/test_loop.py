import numpy as np
import pytest
import torch

from kdpipe.data.splits import Split
from kdpipe.errors import ConfigError
from kdpipe.models.builtin import MLP
from kdpipe.training.kd_loss import hard_loss
from kdpipe.training.loop import Schedule, fit, resolve_device, resolve_precision

pytestmark = pytest.mark.fast  # runs no pipeline


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return Split(x, y)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_learns_in_both_precisions(precision):
    torch.manual_seed(0)
    model = MLP((6,), 2, hidden=(16,))
    r = fit(model, _data(), _data(100, 1), Schedule(epochs=15, lr=0.01, precision=precision), hard_loss, quiet=True)
    assert r.final_val > 85 and len(r.history) == 15
    assert next(model.parameters()).dtype == torch.float32  # mixed precision keeps fp32 weights


@pytest.mark.parametrize("native", [True, False])
def test_precision_auto_takes_bf16_only_where_the_cpu_has_it(monkeypatch, capsys, native):
    import kdpipe.runtime.machine as machine

    flags = {"avx2", "avx512f"} | ({"avx512_bf16"} if native else set())
    monkeypatch.setattr(machine, "cpu_model_and_flags", lambda: ("a CPU", flags))
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for: honoured, with a warning where emulated
    assert ("emulated" in capsys.readouterr().err) is not native
    r = fit(MLP((6,), 2, hidden=(4,)), _data(), _data(100, 1), Schedule(epochs=1, lr=0.01, precision="bf16"), hard_loss,
            quiet=True)
    assert r.precision == "bf16"


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device: cuda was asked for, but torch sees no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda():
    model = MLP((6,), 2, hidden=(16,))
    r = fit(model, _data(), _data(100, 1), Schedule(epochs=5, lr=0.01, device="cuda", precision="bf16"), hard_loss,
            quiet=True)
    assert r.final_val > 70


def test_micro_batches_accumulate_to_the_same_training():
    results = []
    for micro in (None, 7):
        torch.manual_seed(0)
        model = MLP((6,), 2, hidden=(16,))
        fit(model, _data(), _data(100, 1), Schedule(epochs=3, lr=0.01, micro_batch_size=micro), hard_loss, quiet=True)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_batches_of_padded_texts_group_similar_lengths():
    """Each index once per epoch; batches of texts hold similar lengths (little padding computed); other
    inputs keep the plain random permutation."""
    import numpy as np

    from kdpipe.training.loop import GROUP, batch_order

    n, bs = GROUP * 8 * 3 + 5, 8
    lengths = np.random.default_rng(0).integers(1, 49, n)
    batches = batch_order(n, bs, torch.Generator().manual_seed(0), lengths)
    assert sorted(torch.cat(batches).tolist()) == list(range(n))
    padded = sum(len(b) * lengths[b.numpy()].max() for b in batches)
    shuffled = sum(len(b) * lengths[b.numpy()].max() for b in torch.randperm(n).split(bs))
    assert padded < 0.6 * shuffled
    assert torch.equal(torch.cat(batch_order(n, bs, torch.Generator().manual_seed(1))),
                       torch.randperm(n, generator=torch.Generator().manual_seed(1)))


def test_adam_is_fused_on_cpu_and_updates_as_the_default_does():
    from kdpipe.training.loop import _adam

    torch.manual_seed(0)
    a, b = MLP((6,), 2, hidden=(16,)), MLP((6,), 2, hidden=(16,))
    b.load_state_dict(a.state_dict())
    start = [p.detach().clone() for p in a.parameters()]
    fused = _adam(a, Schedule(epochs=1, lr=1e-2, weight_decay=1e-3))
    assert fused.defaults["fused"] is True
    plain = torch.optim.Adam(b.parameters(), lr=1e-2, weight_decay=1e-3)
    x = torch.randn(8, 6)
    for _ in range(3):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    for pa, pb, p0 in zip(a.parameters(), b.parameters(), start):
        assert (pa - p0).abs().max() > 1e-3  # it trained
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)

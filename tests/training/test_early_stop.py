"""distill.epochs: auto: training stops when the validation loss has not improved for `patience`
epochs, keeps the best epoch's weights, and a run interrupted and resumed stops where an uninterrupted
one does, with the same weights."""

import numpy as np
import pytest
import torch

from kdpipe.data.splits import Split
from kdpipe.models.builtin import MLP
from kdpipe.training.early_stop import EarlyStop
from kdpipe.training.kd_loss import hard_loss
from kdpipe.training.loop import Schedule, fit
from kdpipe.training.resume import TrainCheckpoint

pytestmark = pytest.mark.fast  # runs no pipeline


def _data(n, seed, noise=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] + noise * rng.normal(size=n) > 0).astype(np.int64)
    return Split(x, y)


def test_stops_after_patience_epochs_without_improvement_and_keeps_the_best():
    values = iter([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 1.0])
    model = torch.nn.Linear(2, 1)
    es = EarlyStop(patience=3, max_seconds=None, monitor=lambda m: next(values), decays=0)
    kept = None
    for epoch in range(1, 8):
        with torch.no_grad():
            model.weight.fill_(epoch)
        if epoch == 3:
            kept = model.weight.clone()
        if es.update(epoch, model, 1.0):
            break
    assert epoch == 6 and es.best_epoch == 3  # epochs 4, 5, 6 did not beat 3.0; epoch 7 never ran
    record = es.finish(model, epoch, 40)
    assert torch.equal(model.weight, kept)
    assert record == {"epochs_run": 6, "best_epoch": 3, "max_epochs": 40, "best_val_loss": 3.0,
                      "stopped": "no lower validation loss for 3 epochs", "seconds": 6.0, "lr_divided_after": []}


def test_a_stall_divides_the_learning_rate_before_one_stops_training():
    values = iter([5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2, 3.3])
    es = EarlyStop(patience=2, max_seconds=None, monitor=lambda m: next(values), decays=1)
    model = torch.nn.Linear(2, 1)
    stops = [es.update(e, model, 1.0) for e in range(1, 8)]
    # epochs 3-4 stall: the rate is divided; epoch 5 improves; 6-7 stall again: stop
    assert stops == [False] * 6 + [True] and es.decayed_at == [4] and es.lr_scale == 0.1 and es.best_epoch == 5
    assert es.finish(model, 7, 40)["stopped"] == ("no lower validation loss for 2 epochs; the learning rate was "
                                                  "divided by 10 after epoch 4")


def test_a_time_budget_stops_training():
    es = EarlyStop(patience=100, max_seconds=2.5, monitor=lambda m: 1.0)
    model = torch.nn.Linear(2, 1)
    assert [es.update(e, model, 1.0) for e in (1, 2, 3)] == [False, False, True]
    assert "time budget" in es.reason


def _fit(checkpoint=None, fail_at=None):
    torch.manual_seed(0)
    model = MLP((6,), 2, hidden=(32,))
    calls = {"n": 0}

    def loss(s, t, y):
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at:
            raise KeyboardInterrupt  # a kill between two checkpoints
        return hard_loss(s, t, y)

    # noisy labels on little data: the validation loss turns up long before the cap
    r = fit(model, _data(64, 0, noise=1.0), _data(200, 1, noise=1.0),
            Schedule(epochs=200, lr=0.005, batch_size=16, patience=4), loss, checkpoint=checkpoint, quiet=True,
            monitor_loss=hard_loss)
    return model, r


def test_fit_stops_early_and_a_resumed_run_stops_where_an_uninterrupted_one_does(tmp_path):
    model, r = _fit()
    stop = r.stopping
    assert stop["epochs_run"] < 200 and stop["epochs_run"] >= stop["best_epoch"] + 4
    assert len(stop["lr_divided_after"]) == 2  # two stalls divided the rate, the third ended the training
    assert r.final_val == r.history[stop["best_epoch"] - 1]["val_accuracy"]
    ckpt = TrainCheckpoint(tmp_path / "m.pt", "key", 1)
    with pytest.raises(KeyboardInterrupt):
        _fit(ckpt, fail_at=4 * 16 + 2)  # inside epoch 17: after the best (11) and the first division (15)
    assert ckpt.load()["epoch"] == 16
    resumed, r2 = _fit(ckpt)
    assert r2.stopping == {**stop, "seconds": r2.stopping["seconds"]}
    assert r2.history == r.history  # every epoch after the kill trained as it would have (the divided rate too)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), resumed.state_dict().values()))

"""Quantization-aware distillation (training.qad) on a model whose weights have outliers, where
post-training int4 hurts: trained against the fp32 model as its int4 graph computes, then exported and
quantized by the same quantizer, its onnxruntime outputs are closer to the fp32 model's than
post-training int4's."""

import types

import numpy as np
import torch

from kdpipe.config.load import load_config
from kdpipe.metrics import ACCURACY
from kdpipe.quantization.quantizers import Int4, int4_weight_only
from kdpipe.training import qad
from kdpipe.training.fake_quant import Int4Scheme
from kdpipe.training.kd_loss import kd_loss_fn
from tests.conftest import write_config
from tests.training.test_fake_quant import IDS, Tiny, _export, _ort


class _Task:
    """What qad.train asks of a task: its losses, its metric, where KD targets come from."""

    metric = ACCURACY
    targets_from_teacher = False

    def __init__(self, kd):
        self._kd = kd

    def losses(self, cfg):
        return None, self._kd


def _split(ids, model):
    with torch.no_grad():
        y = model(ids).argmax(1).numpy()
    return types.SimpleNamespace(x=ids.numpy(), y=y.astype(np.int64))


def test_int4_qad_logits_closer_to_fp32_than_post_training_int4(tmp_path):
    fp32 = Tiny()
    with torch.no_grad():  # outliers in every layer: a block's scale is set by one large weight
        for layer in (fp32.fc1, fp32.fc2, fp32.head):
            layer.weight[::7, ::5] *= 8
    _export(fp32, tmp_path / "fp32.onnx")
    int4_weight_only(tmp_path / "fp32.onnx", tmp_path / "ptq.onnx", Int4(32, 4))

    cfg = load_config(write_config(tmp_path, {"distill.temperature": 1.0, "distill.alpha": 1.0,
                                               "checkpoint_every": 0}))
    gen = torch.Generator().manual_seed(3)
    train_ids = torch.randint(0, 50, (1024, 12), generator=gen)
    splits = types.SimpleNamespace(train=_split(train_ids, fp32), val=_split(IDS, fp32))
    student = Tiny()
    student.load_state_dict(fp32.state_dict())
    kd = kd_loss_fn(cfg.distill.temperature, cfg.distill.alpha)
    sched = qad.Schedule(epochs=8, lr=1e-3, batch_size=64, seed=0)
    res = qad.train(student, fp32, Int4Scheme(32, 4), _Task(kd), cfg, splits, sched, quiet=True)
    assert res.layers == 4 and res.seconds > 0
    _export(student, tmp_path / "qad-fp32.onnx")
    int4_weight_only(tmp_path / "qad-fp32.onnx", tmp_path / "qad.onnx", Int4(32, 4))

    reference = _ort(tmp_path / "fp32.onnx", IDS)
    err = {k: float(np.abs(_ort(tmp_path / f"{k}.onnx", IDS) - reference).mean()) for k in ("ptq", "qad")}
    assert err["qad"] < 0.7 * err["ptq"], err

"""The PyTorch emulation of onnxruntime's quantized kernels computes what the exported, quantized graph
computes: a model with fake quantization and the same model exported and quantized by kdpipe's
quantizers give the same outputs (up to float summation order), for int8 dynamic (per-channel and
plain, 7- and 8-bit weights, embeddings) and int4 weight-only (accuracy levels 0 and 4)."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from kdpipe.quantization.quantizers import Int4, Int8, dynamic_int8, int4_weight_only
from kdpipe.runtime.sessions import make_session
from kdpipe.training.fake_quant import Int4Scheme, Int8Scheme, emulated, int4_blocks, uint8_dynamic


class Tiny(nn.Module):
    """An embedding, two linear layers (one wide, with outlier weights) and a head: the layers that
    export as Gather, MatMul and Gemm."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 64)
        self.fc1 = nn.Linear(64, 96)
        self.fc2 = nn.Linear(96, 64)
        self.head = nn.Linear(64, 10)
        with torch.no_grad():
            self.fc1.weight[3, 7] = 4.0  # an outlier weight: per-tensor scales suffer from it

    def forward(self, ids):
        h = self.emb(ids).sum(1) / 12  # (ReduceSum: its axes are an input at opset 13+, valid at int4's opset 21)
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(h)))))


def _export(model, path):
    ids = torch.randint(0, 50, (4, 12))
    torch.onnx.export(model.eval(), (ids,), str(path), dynamo=False, opset_version=17, input_names=["ids"],
                      output_names=["logits"], dynamic_axes={"ids": {0: "batch", 1: "seq"}})


def _ort(path, ids):
    sess, _ = make_session(path, "cpu")
    return sess.run(None, {"ids": ids.numpy()})[0]


IDS = torch.randint(0, 50, (32, 12), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("per_channel,reduce_range", [(True, True), (False, True), (True, False)])
def test_int8_dynamic_emulation_matches_onnxruntime(tmp_path, per_channel, reduce_range):
    model = Tiny()
    _export(model, tmp_path / "fp32.onnx")
    dynamic_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", Int8(per_channel, reduce_range, None))
    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert "MatMulInteger" in ops
    got = _ort(tmp_path / "int8.onnx", IDS)
    with torch.no_grad():
        fp32 = model(IDS).numpy()
        with emulated(model, Int8Scheme.for_ops(None, per_channel, reduce_range)) as n:
            fake = model(IDS).numpy()
        assert np.allclose(model(IDS).numpy(), fp32)  # float again on leaving
    assert n == 4
    err_fake, err_fp32 = np.abs(got - fake).max(), np.abs(got - fp32).max()
    assert err_fake < 1e-4 * max(1.0, np.abs(got).max()), (err_fake, err_fp32)
    assert err_fp32 > 20 * err_fake  # the emulation is what onnxruntime computes, not just close to fp32


@pytest.mark.parametrize("accuracy_level", [0, 4])
def test_int4_emulation_matches_onnxruntime(tmp_path, accuracy_level):
    model = Tiny()
    _export(model, tmp_path / "fp32.onnx")
    assert int4_weight_only(tmp_path / "fp32.onnx", tmp_path / "int4.onnx", Int4(32, accuracy_level)) == 4
    got = _ort(tmp_path / "int4.onnx", IDS)
    with torch.no_grad():
        fp32 = model(IDS).numpy()
        with emulated(model, Int4Scheme(32, accuracy_level)):
            fake = model(IDS).numpy()
    err_fake, err_fp32 = np.abs(got - fake).max(), np.abs(got - fp32).max()
    assert err_fake < 1e-4 * max(1.0, np.abs(got).max()), (err_fake, err_fp32)
    assert err_fp32 > 20 * err_fake


def test_gradients_pass_straight_through():
    w = torch.randn(8, 40, requires_grad=True)
    (int4_blocks(w, 32) * 3).sum().backward()
    assert torch.allclose(w.grad, torch.full_like(w, 3.0))
    x = torch.randn(5, requires_grad=True)
    uint8_dynamic(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones(5))


def test_learned_scales_are_what_onnxruntime_rounds_on_after_the_weights_are_clipped(tmp_path):
    """LSQ: with scales learned below max|w| / 64, leaving the emulation clips each channel's weights to
    64 x its scale, so the quantizer (scale from the weights) rounds them on the learned scale."""
    model = Tiny()
    scheme = Int8Scheme.for_ops(None, per_channel=True, reduce_range=True, learn_scales=True)
    with torch.no_grad():
        with emulated(model, scheme):
            for layer in (model.fc1, model.fc2, model.head):
                layer.qad_log_scale -= 0.7  # as if training had shrunk every scale to half
            fake = model(IDS).numpy()
    assert not any("qad_log_scale" in k for k in model.state_dict())
    _export(model, tmp_path / "fp32.onnx")
    dynamic_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", Int8(True, True, None))
    got = _ort(tmp_path / "int8.onnx", IDS)
    assert np.abs(got - fake).max() < 1e-4 * max(1.0, np.abs(got).max())

import sys
import types

import pytest
import torch
from torch import nn

from kdpipe.errors import ModelError
from kdpipe.models.builtin import BUILTIN
from kdpipe.models.checkpoint import count_params, load_model, read_state_dict, save_model
from kdpipe.models.factory import build_model
from kdpipe.models.prune import prune_structured

pytestmark = pytest.mark.fast  # runs no pipeline


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_model_builds_and_runs(name):
    m = build_model(f"builtin:{name}", {}, (1, 8, 8), 10, "student.model")
    assert m(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_python_factory_gets_shape_and_classes(tmp_path, monkeypatch):
    mod = types.ModuleType("my_models")
    mod.tiny = lambda num_classes, width=4: nn.Sequential(
        nn.Flatten(), nn.Linear(64, width), nn.Linear(width, num_classes)
    )
    monkeypatch.setitem(sys.modules, "my_models", mod)
    m = build_model("python:my_models:tiny", {"width": 6}, (1, 8, 8), 3, "teacher.model")
    assert m(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ModelError, match="unknown params"):
        build_model("python:my_models:tiny", {"depth": 2}, (1, 8, 8), 3, "teacher.model")


def test_torchvision_models_by_name(monkeypatch):
    tvm = types.ModuleType("torchvision.models")
    tvm.list_models = lambda: ["resnet18"]
    tvm.get_model = lambda name, weights, num_classes: nn.Linear(4, num_classes)
    tv = types.ModuleType("torchvision")
    tv.models = tvm
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", tvm)
    assert build_model("torchvision:resnet18", {}, (3, 32, 32), 7, "teacher.model").out_features == 7
    with pytest.raises(ModelError, match="no model 'vgg99'"):
        build_model("torchvision:vgg99", {}, (3, 32, 32), 7, "teacher.model")


@pytest.mark.parametrize("spec, message", [
    ("builtin:transformer9000", "unknown built-in model"),
    ("hub:foo", "expected builtin:NAME"),
    ("python:no_such_module_xyz:f", "cannot import"),
])
def test_bad_model_specs(spec, message):
    with pytest.raises(ModelError, match=message):
        build_model(spec, {}, (1, 8, 8), 10, "student.model")


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_pruned_models_reload_with_their_smaller_shapes(tmp_path, name):
    spec = {"model": f"builtin:{name}", "params": {}, "input_shape": [1, 8, 8], "num_classes": 10}
    m = build_model(spec["model"], {}, (1, 8, 8), 10, "student")
    before = count_params(m)
    prune_structured(m, (1, 8, 8), 10, 0.5)
    assert count_params(m) < before
    save_model(m, tmp_path / "p.safetensors", spec)
    loaded, _ = load_model(tmp_path / "p.safetensors", "test")
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(loaded(x), m.eval()(x), atol=1e-6)


def test_checkpoints_never_unpickle_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="holds pickled Python objects besides tensors, which kdpipe never loads"):
        read_state_dict(tmp_path / "evil.pt", "teacher.weights")
    (tmp_path / "trunc.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        read_state_dict(tmp_path / "trunc.safetensors", "teacher.weights")


def test_pruning_can_keep_widths_multiples_of_round_to():
    m = build_model("builtin:mlp", {"hidden": [128]}, (1, 8, 8), 10, "student")
    prune_structured(m, (1, 8, 8), 10, 0.3, round_to=8)
    assert m.net[1].out_features % 8 == 0 and m.net[1].out_features < 128

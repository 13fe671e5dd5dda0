"""Model files: safetensors with the model spec in its metadata, and safe loading of user checkpoints.

Pickled objects are never loaded: torch files go through `torch.load(weights_only=True)`.
Pruned models have smaller layers than their spec builds, so loading resizes layers to the stored
shapes before copying the weights in.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from kdpipe.errors import ModelError
from kdpipe.models.factory import build_model

_SIZE_ATTRS = {
    nn.Linear: ("in_features", "out_features"),
    nn.Conv1d: ("in_channels", "out_channels"),
    nn.Conv2d: ("in_channels", "out_channels"),
    nn.Conv3d: ("in_channels", "out_channels"),
}


def save_model(model: nn.Module, path: Path, spec: dict) -> None:
    """spec: {"model": "builtin:mlp", "params": {...}, "input_shape": [...], "num_classes": N}."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"kdpipe_spec": json.dumps(spec)})


def load_model(path: Path, where: str) -> tuple[nn.Module, dict]:
    """Load a model saved by `save_model` (kdpipe's own files)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        spec = json.loads(meta["kdpipe_spec"])
    except (OSError, SafetensorError, KeyError, json.JSONDecodeError) as e:
        raise ModelError(f"{where}: {path} is not a kdpipe model file ({e})") from None
    model = build_model(spec["model"], spec["params"], spec["input_shape"], spec["num_classes"], where)
    load_weights_into(model, read_state_dict(path, where), where, resize=True)
    return model.eval(), spec


def read_state_dict(path: Path, where: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{where}: checkpoint not found: {path}")
    if path.suffix != ".safetensors" and not _looks_like_torch_save(path):
        raise ModelError(f"{where}: {path} is not a checkpoint: expected weights written by torch.save (.pt, .pth: "
                         "a zip archive or a pickle) or a .safetensors file")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):  # torch's advice is to load it unsafely: ours is not
            raise ModelError(f"{where}: {path} holds pickled Python objects besides tensors, which kdpipe never "
                             "loads (they can run code); save plain weights: torch.save(model.state_dict(), "
                             "path) or safetensors") from None
        raise ModelError(f"{where}: cannot read checkpoint {path} (UnpicklingError: {_short(e)})") from None
    except Exception as e:  # truncated file, not a checkpoint at all
        raise ModelError(f"{where}: cannot read checkpoint {path} ({type(e).__name__}: {_short(e)})") from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{where}: {path} does not hold a state dict of tensors")
    return obj


def _looks_like_torch_save(path: Path) -> bool:
    """torch.save writes a zip archive (torch >= 1.6) or, in the legacy format, a pickle (protocol 2+)."""
    import zipfile

    with open(path, "rb") as f:
        first = f.read(1)
    return first == b"\x80" or zipfile.is_zipfile(path)


def load_weights_into(model: nn.Module, state: dict, where: str, resize: bool = False) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelError(
            f"{where}: checkpoint does not match the model "
            f"(missing: {missing[:3] or 'none'}, unexpected: {unexpected[:3] or 'none'})"
        )
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong and resize:
        _resize_to(model, state)
    elif wrong:
        k = wrong[0]
        raise ModelError(
            f"{where}: checkpoint shape for {k} is {tuple(state[k].shape)}, the model has {tuple(own[k].shape)}"
        )
    model.load_state_dict(state)


def _resize_to(model: nn.Module, state: dict) -> None:
    """Give layers the (pruned) shapes of `state` so its weights fit."""
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for pname, param in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            key = prefix + pname
            if key in state and param is not None and param.shape != state[key].shape:
                new = torch.empty_like(state[key], dtype=param.dtype)
                if isinstance(param, nn.Parameter):
                    setattr(module, pname, nn.Parameter(new, requires_grad=param.requires_grad))
                else:
                    module.register_buffer(pname, new)
        attrs = next((a for t, a in _SIZE_ATTRS.items() if isinstance(module, t)), None)
        if attrs and prefix + "weight" in state:
            w = state[prefix + "weight"]
            groups = getattr(module, "groups", 1)
            setattr(module, attrs[0], w.shape[1] * groups)
            setattr(module, attrs[1], w.shape[0])
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and prefix + "weight" in state:
            module.num_features = state[prefix + "weight"].shape[0]
        if isinstance(module, nn.LayerNorm) and prefix + "weight" in state:
            module.normalized_shape = tuple(state[prefix + "weight"].shape)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _short(e: Exception, limit: int = 300) -> str:
    """The exception's message on one line; a long one (torch's pickle advice runs to 1,500
    characters) is cut at a sentence or word boundary, never mid-word."""
    text = " ".join(str(e).split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > limit // 3 else cut[: cut.rfind(" ")] + " ..."

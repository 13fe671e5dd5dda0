"""Hugging Face transformers models: from a folder or hub id, from a config (tiny models built here),
wrapped as one-tensor modules (students derived from a teacher: models/hf_derive.py).

`hf:PATH_OR_ID` loads with the Auto class of the task; remote code runs only with
trust_remote_code set in the config. `hf-config:MODEL_TYPE` builds a fresh model from
AutoConfig.for_model(MODEL_TYPE, **params).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kdpipe.errors import ModelError

AUTO_CLASSES = {
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "classification": "AutoModelForSequenceClassification",
    "embedding": "AutoModel",
}


class HFModule(nn.Module):
    """A transformers model as a module from one input tensor to one output tensor, which is what the
    training loop, evaluation and export expect: logits, or (pool=True) the mean-pooled sentence
    embedding, mapped by a learned projection into the teacher's embedding size when widths differ.

    Inputs are token ids [batch, sequence] (packed LM blocks: every position attends) or, for padded
    texts, ids and attention mask stacked as [batch, 2, sequence], exactly what an app feeds. With
    `capture` set, the hidden states and attention maps of the last call are kept for
    intermediate-layer matching.
    """

    def __init__(self, hf: nn.Module, pool: bool = False, project_to: int | None = None):
        super().__init__()
        self.hf, self.pool = hf, pool
        width = hf.config.hidden_size
        self.proj = nn.Linear(width, project_to) if pool and project_to and project_to != width else None
        self.capture = self.capture_attentions = False
        self.hidden = self.attentions = self.mask = None
        # One output per text (a pooled embedding, class logits): trailing padding can be cut off
        # before the model runs (a text's outputs ignore masked positions), which on short texts
        # padded to data.sequence_length saves most of the compute.
        self.trim = pool or type(hf).__name__.endswith("ForSequenceClassification")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.dim() == 3:  # ids and mask stacked
            input_ids, attention_mask = input_ids[:, 0], input_ids[:, 1]
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if self.trim and attention_mask is not None and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
                                                             or torch.compiler.is_compiling()):
            used = int(mask.any(0).nonzero().max()) + 1 if mask.any() else 1  # the last column any text uses
            input_ids, mask = input_ids[:, :used], mask[:, :used]
        extra = {"output_hidden_states": True, "output_attentions": self.capture_attentions} if self.capture else {}
        out = self.hf(input_ids=input_ids, attention_mask=mask, **extra)
        if self.capture:
            self.hidden, self.attentions, self.mask = out.hidden_states, out.attentions, mask
        if not self.pool:
            return out.logits
        w = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        emb = (out.last_hidden_state * w).sum(1) / w.sum(1).clamp(min=1.0)  # mean over real tokens
        return emb if self.proj is None else self.proj(emb)

    @torch.no_grad()
    def start_projection(self, channels: list[int]) -> None:
        """Start the projection as the map that puts each of the student's channels back where it
        came from in the teacher's width, so a student sliced or pruned from the teacher starts from
        the teacher's own embedding (restricted to the kept channels), not from a random map."""
        if self.proj is None:
            return
        self.proj.weight.zero_()
        self.proj.bias.zero_()
        self.proj.weight[torch.as_tensor(channels), torch.arange(len(channels))] = 1.0


def freeze_token_embeddings(model: HFModule) -> None:
    """Stop training a transformers model's token embedding table (distill.freeze_embeddings, which
    the config allows for transformers students only): the optimiser then skips its vocabulary x
    width weights."""
    model.hf.get_input_embeddings().weight.requires_grad_(False)


def _auto(task: str):
    import transformers

    return getattr(transformers, AUTO_CLASSES[task])


def check_folder(spec: str, where: str) -> None:
    """hf:PATH that names a folder (not a hub id) which is not there: one clear error."""
    scheme, _, name = spec.partition(":")
    if scheme == "hf" and not Path(name).exists() and (name.startswith(("/", ".", "~")) or name.count("/") >= 2):
        raise ModelError(f"{where} {spec!r}: folder {name} not found (relative to {Path.cwd()})")


def build_hf(spec: str, params: dict, task: str, where: str, trust_remote_code: bool = False) -> nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()  # e.g. "newly initialized head": expected when fine-tuning
    scheme, _, name = spec.partition(":")
    check_folder(spec, where)
    try:
        if scheme == "hf":
            return _auto(task).from_pretrained(name, trust_remote_code=trust_remote_code, **params)
        if scheme == "hf-config":
            from transformers import AutoConfig

            return _auto(task).from_config(AutoConfig.for_model(name, **params))
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{where} {spec!r}: cannot load ({' '.join(str(e).split())[:300]})") from None
    raise ModelError(f"{where} {spec!r}: expected hf:PATH_OR_ID or hf-config:MODEL_TYPE")


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer blocks: the ModuleList as long as config.num_hidden_layers."""
    n = model.config.num_hidden_layers
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if len(found) != 1:
        raise ModelError(f"cannot find the layer stack of {type(model).__name__} ({len(found)} candidates)")
    return found[0]

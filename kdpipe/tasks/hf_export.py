"""What leaves a transformers task as files: the ONNX export (optimum's recipes, torch.onnx where
optimum has none, pooled sentence embedders), onnxruntime's graph fusions, and the bundle folder."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import torch

from kdpipe.bundle.folder import write_info
from kdpipe.runtime.sessions import input_names

FUSABLE = {"gpt2": "gpt2", "bert": "bert", "roberta": "bert", "distilbert": "bert"}  # transformers -> ORT names


def export_onnx(model, saved: Path, out: Path, opset: int, data, optimum_task: str, pool: bool) -> None:
    """fp32 ONNX of a transformers model: optimum's recipe where it has one, else torch.onnx; sentence
    embedders with their pooling inside the graph."""
    import logging
    import warnings

    import transformers

    # optimum and the exporter report on stdout, in warnings and loggers; the export stage checks
    # the result against torch itself.
    transformers.logging.set_verbosity_error()
    from optimum.utils import logging as optimum_logging

    optimum_logging.set_verbosity_error()  # e.g. its notes on deduplicating tied weights
    for name in ("optimum", "optimum.exporters", "optimum.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if pool:
            _export_pooled(model, data, out, opset)
            return
        if not _optimum_exports(model, optimum_task):  # e.g. BERT as a causal LM (is_decoder): torch.onnx directly
            (_export_with_past if optimum_task.endswith("-with-past") else _export_torch)(model, data, out, opset)
            return
        from optimum.exporters.onnx import main_export

        main_export(str(saved), tmp, task=optimum_task, opset=opset, device="cpu",
                    do_validation=False, library_name="transformers")
        shutil.move(str(Path(tmp) / "model.onnx"), out)


PAST, PRESENT = "past_key_values.{}.{}", "present.{}.{}"  # optimum's names: ORTModelForCausalLM loads either export


class _WithPast(torch.nn.Module):
    """A causal LM as (input_ids, attention_mask, position_ids, past keys and values per layer) ->
    (logits, present keys and values), the inputs and outputs optimum's text-generation-with-past
    export has. The causal mask is built here from the positions, [batch, new, past + new], so no
    length is fixed at trace time (transformers' own mask code takes Python branches on lengths)."""

    def __init__(self, model, layers: int):
        super().__init__()
        self.model, self.layers = model, layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache.from_legacy_cache(tuple((past[2 * i], past[2 * i + 1]) for i in range(self.layers)))
        seen = torch.arange(attention_mask.shape[1], device=input_ids.device)
        causal = (seen[None, None, :] <= position_ids[:, :, None]).to(attention_mask.dtype)
        out = self.model(input_ids=input_ids, attention_mask=causal * attention_mask[:, None, :],
                         position_ids=position_ids, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        pairs = cache.to_legacy_cache() if hasattr(cache, "to_legacy_cache") else cache
        return (out.logits, *[t for kv in pairs for t in kv[:2]])


def _export_with_past(model, data, out, opset) -> None:
    """torch.onnx for a causal LM optimum has no recipe for (BERT with is_decoder), with a KV cache:
    traced with 3 past and 4 new tokens, every length a dynamic axis (an empty past serves the prompt)."""
    hf = model.hf.eval()
    c = hf.config
    layers, heads = c.num_hidden_layers, c.num_attention_heads
    ids = torch.from_numpy(data.train.x[:2, :4])
    past = [torch.zeros(2, heads, 3, c.hidden_size // heads) for _ in range(2 * layers)]
    names_in = [PAST.format(i, k) for i in range(layers) for k in ("key", "value")]
    names_out = [PRESENT.format(i, k) for i in range(layers) for k in ("key", "value")]
    axes = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
        **{n: {0: "batch_size", 2: "past_sequence_length"} for n in names_in},
        **{n: {0: "batch_size", 2: "total_sequence_length"} for n in names_out},
    }
    # eval() on the wrapper too: the exporter puts every module back in the wrapper's mode afterwards
    torch.onnx.export(_WithPast(hf, layers).eval(), (ids, torch.ones(2, 7, dtype=torch.long),
                                                     torch.arange(3, 7).repeat(2, 1), *past), str(out),
                      input_names=["input_ids", "attention_mask", "position_ids", *names_in],
                      output_names=["logits", *names_out], dynamic_axes=axes, opset_version=opset, dynamo=False)

def _optimum_exports(model, optimum_task: str) -> bool:
    """Whether optimum has an ONNX recipe for this model type and task."""
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX recipes)
    from optimum.exporters.tasks import TasksManager

    try:
        tasks = TasksManager.get_supported_tasks_for_model_type(model.hf.config.model_type, "onnx",
                                                                 library_name="transformers")
    except KeyError:
        return False
    return optimum_task in tasks

def _export_torch(model, data, out, opset) -> None:
    """torch.onnx for what optimum has no recipe for: the same inputs and output names as optimum's
    export (input_ids, attention_mask -> logits), dynamic batch and sequence axes."""
    ids = torch.from_numpy(data.train.x[:2])
    if ids.dim() == 3:
        ids = ids[:, 0]
    torch.onnx.export(model.eval(), (ids, torch.ones_like(ids)), str(out), opset_version=opset, dynamo=False,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask",
                                                                              "logits")})

def _export_pooled(model, data, out, opset) -> None:
    """Sentence embedders export with pooling (and projection) inside the graph, so an app gets
    the embedding from one call, as sentence-transformers' own ONNX exports do."""
    x = torch.from_numpy(data.train.x[:2])
    torch.onnx.export(model.eval(), (x[:, 0], x[:, 1]), str(out), input_names=["input_ids", "attention_mask"],
                      output_names=["sentence_embedding"], opset_version=opset, dynamo=False,
                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                    "attention_mask": {0: "batch", 1: "sequence"},
                                    "sentence_embedding": {0: "batch"}})

def fuse(onnx_path: Path, out: Path, model) -> dict | None:
    """Attention, SkipLayerNormalization, Gelu ... fusions of onnxruntime.transformers for the model
    types it knows; counted per fused operator for the report."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.hf.config
    if config.model_type not in FUSABLE or (config.model_type != "gpt2" and getattr(config, "is_decoder", False)):
        return None  # onnxruntime's BERT fusions assume bidirectional attention: not for a causal BERT
    with contextlib.redirect_stdout(io.StringIO()):
        fused = optimize_model(str(onnx_path), model_type=FUSABLE[config.model_type],
                               num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=1)
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    if not stats:
        return None
    fused.save_model_to_file(str(out))
    return stats


def genai_config(config: dict, names: list, eos: int, bos: int | None = None, pad: int | None = None) -> dict:
    """onnxruntime-genai's genai_config.json for a graph with a KV cache: the model's sizes (from its
    transformers config.json and the past inputs' shapes) and the input and output names."""
    past = [n for n in names if n.startswith("past_key_values.")]
    heads, head_size = past[0].shape[1], past[0].shape[3]
    context = config.get("n_positions") or config.get("max_position_embeddings")
    inputs = {"input_ids": "input_ids", "attention_mask": "attention_mask",
              "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"}
    if "position_ids" in names:
        inputs["position_ids"] = "position_ids"
    return {
        "model": {
            "type": "decoder",
            "context_length": context,
            "vocab_size": config["vocab_size"],
            "bos_token_id": eos if bos is None else bos,
            "eos_token_id": eos,
            "pad_token_id": eos if pad is None else pad,
            "decoder": {
                "filename": "model.onnx",
                "session_options": {"log_id": "kdpipe", "provider_options": []},
                "head_size": head_size,
                "hidden_size": heads * head_size,
                "num_attention_heads": heads,
                "num_key_value_heads": heads,
                "num_hidden_layers": len(past) // 2,
                "inputs": inputs,
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
            },
        },
        "search": {
            "do_sample": False,
            "num_beams": 1,
            "num_return_sequences": 1,
            "max_length": context,
            "min_length": 0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
            "repetition_penalty": 1.0,
            "past_present_share_buffer": False,
            "early_stopping": True,
            "length_penalty": 1.0,
            "diversity_penalty": 0.0,
            "no_repeat_ngram_size": 0,
        },
    }


def write_bundle(folder: Path, onnx_model: Path, variant: str, saved_source: Path, data, metric: dict, task,
                 columns: dict | None = None) -> dict:
    """model.onnx with the model's config.json and tokenizer files: loadable with optimum's
    ORTModelFor... classes, or plain onnxruntime plus the tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_model, folder / "model.onnx")
    for f in Path(saved_source).iterdir():
        if f.suffix in (".json", ".txt") and f.name not in ("kdpipe_spec.json", "generation_config.json"):
            shutil.copyfile(f, folder / f.name)
    names = input_names(onnx_model)
    past = [n for n in names if n.startswith("past_key_values.")]
    if past:  # onnxruntime-genai loads the folder too
        tok = data.tokenizer
        config = json.loads((folder / "config.json").read_text())
        (folder / "genai_config.json").write_text(json.dumps(genai_config(
            config, names, tok.eos_token_id, tok.bos_token_id, tok.pad_token_id), indent=2))
    cache = {"kv_cache": {
        "layers": len(past) // 2, "heads": past[0].shape[1], "head_size": past[0].shape[3],
        "inputs": "past_key_values.{layer}.key and .value, [batch, heads, past tokens, head_size]",
        "outputs": "present.{layer}.key and .value: the next call's past",
        "first_call": "the whole prompt with an empty past ([batch, heads, 0, head_size]); then one token a call",
        "attention_mask": "[batch, past + new tokens], all ones", "position_ids": "past + 0 .. past + new - 1",
        "eos_token_id": data.tokenizer.eos_token_id}} if past else {}
    return write_info(folder, task=task.name, variant=variant, metric=metric, fields={
        "tokenizer": "tokenizer.json",
        "inputs": [str(n) for n in names] if past else ["input_ids", "attention_mask"],
        "max_sequence_length": data.max_length or data.sequence_length,
        "trained_sequence_length": data.sequence_length,
        "padding": "right, attention_mask 0 on padding" if task.padded else "none (attention_mask all ones)",
        **(columns or {}), **task.bundle_info(data), **cache})

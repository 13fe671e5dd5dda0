"""What leaves a transformers task as files: the ONNX export (optimum's recipes, torch.onnx where
optimum has none, pooled sentence embedders), onnxruntime's graph fusions, and the bundle folder."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import torch

from kdpipe.bundle import write_info

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
    for name in ("optimum", "optimum.exporters", "optimum.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if pool:
            _export_pooled(model, data, out, opset)
            return
        if not _optimum_exports(model, optimum_task):  # e.g. BERT as a causal LM (is_decoder): torch.onnx directly
            _export_torch(model, data, out, opset)
            return
        from optimum.exporters.onnx import main_export

        main_export(str(saved), tmp, task=optimum_task, opset=opset, device="cpu",
                    do_validation=False, library_name="transformers")
        shutil.move(str(Path(tmp) / "model.onnx"), out)

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


def write_bundle(folder: Path, onnx_model: Path, variant: str, saved_source: Path, data, metric: dict, task) -> dict:
    """model.onnx with the model's config.json and tokenizer files: loadable with optimum's
    ORTModelFor... classes, or plain onnxruntime plus the tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_model, folder / "model.onnx")
    for f in Path(saved_source).iterdir():
        if f.suffix in (".json", ".txt") and f.name not in ("kdpipe_spec.json", "generation_config.json"):
            shutil.copyfile(f, folder / f.name)
    return write_info(folder, task=task.name, variant=variant, metric=metric, fields={
        "tokenizer": "tokenizer.json", "inputs": ["input_ids", "attention_mask"],
        "max_sequence_length": data.max_length or data.sequence_length,
        "trained_sequence_length": data.sequence_length,
        "padding": "right, attention_mask 0 on padding" if task.padded else "none (attention_mask all ones)",
        **task.bundle_info(data)})

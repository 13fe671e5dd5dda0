"""What every transformers task shares: tokenizer, models (given, built from a config, or derived
from the teacher), model folders, export, graph fusions, session inputs and the bundle.

The tasks on top (language_model, text_classification, embedding) add their data, losses and
checks. Models are HFModule wrappers (token ids -> one tensor), so the training loop, evaluation
and the stages treat them like any other model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from kdpipe.bundle.generate import text_feeds
from kdpipe.errors import ConfigError, ModelError
from kdpipe.models.checks import check_trainable
from kdpipe.models.hf import HFModule
from kdpipe.models.hf_prune import prune_widths
from kdpipe.tasks import hf_export
from kdpipe.tasks.base import Task

DERIVE_PARAMS = {"layers", "hidden_size", "num_attention_heads", "intermediate_size", "init"}


class HFTask(Task):
    optimum_task: str  # optimum's export task name
    tokenizer_kind = "masked"  # the kind trained here when the teacher brings none
    pool = False  # True: the model's output is a pooled sentence embedding
    padded = True  # inputs are padded texts, ids and mask stacked (False: packed LM blocks)

    # --- tokenizer -----------------------------------------------------------------------
    def tokenizer(self, cfg, texts: list[str]):
        if cfg.teacher.model.startswith("hf:"):
            from transformers import AutoTokenizer

            from kdpipe.models.hf import check_folder

            check_folder(cfg.teacher.model, "teacher.model")

            try:
                tok = AutoTokenizer.from_pretrained(cfg.teacher.model[3:])
            except (OSError, ValueError) as e:
                raise ModelError(f"teacher.model {cfg.teacher.model!r}: no tokenizer next to the model "
                                 f"({' '.join(str(e).split())[:200]})") from None
        else:  # a teacher built here gets a tokenizer trained here, on the text
            from kdpipe.data.text import train_tokenizer

            tok = train_tokenizer(texts, self.tokenizer_kind, cfg.data.vocab_size)
        if tok.pad_token is None:  # GPT-2 style tokenizers have none; padding is masked out anyway
            tok.pad_token = tok.eos_token
        return tok

    # --- models --------------------------------------------------------------------------
    def hf_params(self, cfg, section, data) -> dict:
        """Parameters for from_pretrained / AutoConfig.for_model; models built here get the data's
        vocabulary, positions and special tokens."""
        params = dict(section.params)
        if section.model.startswith("hf-config:"):
            tok = data.tokenizer
            params.setdefault("vocab_size", len(tok))
            if section.model == "hf-config:gpt2":
                params.setdefault("n_positions", max(data.sequence_length, 64))
                params.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
            else:
                params.setdefault("max_position_embeddings", max(data.sequence_length, 64))
            params.setdefault("pad_token_id", tok.pad_token_id)
        return params

    def wrap(self, hf, data, teacher: HFModule | None = None) -> HFModule:
        return HFModule(hf, self.pool)

    def build(self, role, cfg, data, teacher=None):
        from kdpipe.models.hf import build_hf
        from kdpipe.models.hf_derive import derive_student

        section = getattr(cfg, role)
        spec = {"model": section.model, "params": dict(section.params)}
        if role == "student" and section.model == "derive:teacher":
            if teacher is None:
                raise ConfigError("student.model derive:teacher needs the teacher")
            p = dict(section.params)
            unknown = set(p) - DERIVE_PARAMS
            if unknown:
                raise ConfigError(f"student.params: derive:teacher takes {', '.join(sorted(DERIVE_PARAMS))} "
                                  f"(got {', '.join(sorted(unknown))})")
            init = p.pop("init", "slice")
            if init not in ("slice", "prune", "fresh"):
                raise ConfigError(f"student.params.init: {init!r}; use slice, prune or fresh")
            from kdpipe.models.hf_prune import IMPORTANCE_SAMPLES

            hf, chosen, channels = derive_student(teacher.hf, p.pop("layers", "every_other"), p, init,
                                                  data.train.x[:IMPORTANCE_SAMPLES])
            spec["teacher_layers"] = chosen
            module = self.wrap(hf, data, teacher)
            if channels is not None:
                module.start_projection(channels)
            return module, spec
        hf = build_hf(section.model, self.hf_params(cfg, section, data), self.name, f"{role}.model",
                      trust_remote_code=getattr(section, "trust_remote_code", False))
        return self.wrap(hf, data, teacher if role == "student" else None), spec

    def prune(self, model, spec, data, pc):
        """Minitron-style width (hidden channels with their heads, FFN neurons) and depth pruning by
        activation importance on training inputs (kdpipe.models.hf_prune)."""
        from kdpipe.models.hf_prune import IMPORTANCE_SAMPLES, prune_model

        cfg = model.hf.config
        w = prune_widths(model.hf, pc)
        n = cfg.num_hidden_layers
        hf, plan, _ = prune_model(model.hf, data.train.x[:IMPORTANCE_SAMPLES], w.hidden, w.neurons,
                                  n - pc.layers if pc.layers else None, w.heads)
        # an embedder keeps its output width (HFModule adds the projection only where widths differ)
        pruned = HFModule(hf, model.pool, model.proj.out_features if model.proj is not None else cfg.hidden_size)
        if pruned.proj is not None:
            with torch.no_grad():
                if model.proj is not None:  # the student's own projection, on the channels kept
                    pruned.proj.weight.copy_(model.proj.weight[:, plan.hidden])
                    pruned.proj.bias.copy_(model.proj.bias)
                else:
                    pruned.start_projection(plan.hidden)
        if spec.get("teacher_layers"):
            spec = {**spec, "teacher_layers": [spec["teacher_layers"][i] for i in plan.layers]}
        what = {"method": "activation importance (Minitron: LayerNorm channels, head output norms, FFN "
                          "activations; layers by greedy removal, output cosine)",
                "hidden_size": [cfg.hidden_size, hf.config.hidden_size],
                "attention_heads": [w.had, w.heads],
                "intermediate_size": [cfg.intermediate_size, hf.config.intermediate_size],
                "layers_kept": plan.layers, "layers_before": n}
        what["removed"] = (f"hidden {cfg.hidden_size}->{hf.config.hidden_size}, heads {w.had}->{w.heads} a block, "
                           f"FFN {cfg.intermediate_size}->"
                           f"{hf.config.intermediate_size}, layers {n}->{len(plan.layers)}")
        return pruned, spec, what

    def check_pair(self, cfg, data, teacher: HFModule, student: HFModule) -> None:
        """Task-specific pre-flight checks of the built teacher and student, before they run."""

    def check_outputs(self, data, teacher: HFModule, shapes: dict) -> None:
        """Task-specific checks of the output shapes for the first two training inputs."""

    def check_models(self, data, models: dict) -> None:
        """Task-specific checks of what the built models compute ({role: model})."""

    def preflight(self, cfg, data) -> None:
        teacher, _ = self.build("teacher", cfg, data)
        student, spec = self.build("student", cfg, data, teacher)
        self.check_pair(cfg, data, teacher, student)
        if cfg.prune.enabled:  # a prune stage that cannot prune this family fails now, not after distillation
            from kdpipe.models.hf_prune import check_layout

            check_layout(student.hf, f"prune.enabled: the student ({student.hf.config.model_type})")
            prune_widths(student.hf, cfg.prune)
        from kdpipe.training.intermediate import check_mapping

        check_mapping(cfg.distill.intermediate, teacher, student, spec.get("teacher_layers"))
        ids = torch.from_numpy(data.train.x[:2])  # real inputs, as the training loop will feed them
        models = {"teacher": teacher, "student": student}
        with torch.inference_mode():
            outs = {role: m.eval()(ids) for role, m in models.items()}
        for role, m in models.items():
            check_trainable(m, outs[role], f"{role}.model {getattr(cfg, role).model!r}", trains=role == "student")
        shapes = {role: tuple(out.shape) for role, out in outs.items()}
        self.check_outputs(data, teacher, shapes)
        self.check_models(data, models)
        if shapes["teacher"] != shapes["student"]:
            raise ModelError(f"teacher and student outputs do not line up: {shapes['teacher']} vs {shapes['student']} "
                             f"for 2 samples")

    # --- files ---------------------------------------------------------------------------
    def save(self, model, folder, name, spec, data) -> Path:
        path = folder / name
        model.hf.cpu().save_pretrained(path)
        data.tokenizer.save_pretrained(path)
        if model.proj is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in model.proj.state_dict().items()}, path / "projection.safetensors")
        (path / "kdpipe_spec.json").write_text(json.dumps({
            **spec, "task": self.name, "pool": model.pool,
            "projection": None if model.proj is None else list(model.proj.weight.shape)}))
        return path

    def load(self, path, where):
        import transformers

        from kdpipe.models.hf import AUTO_CLASSES

        try:
            spec = json.loads((Path(path) / "kdpipe_spec.json").read_text())
            hf = getattr(transformers, AUTO_CLASSES[self.name]).from_pretrained(path)
            module = HFModule(hf, spec.get("pool", False), (spec.get("projection") or [None])[0])
            if module.proj is not None:
                from safetensors.torch import load_file

                module.proj.load_state_dict(load_file(Path(path) / "projection.safetensors"))
        except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
            raise ModelError(f"{where}: cannot load {path} ({' '.join(str(e).split())[:200]})") from None
        return module.eval(), spec

    def export_onnx(self, model, saved, out, opset, data) -> None:
        hf_export.export_onnx(model, saved, out, opset, data, self.optimum_task, self.pool)

    def fuse(self, onnx_path, out, model) -> dict | None:
        return hf_export.fuse(onnx_path, out, model)

    def feeds(self, input_names, x: np.ndarray) -> dict:
        # padded texts carry their mask; in packed LM blocks every position is real text
        ids, mask = (x[:, 0], x[:, 1]) if x.ndim == 3 else (x, None)
        return text_feeds(input_names, ids, mask)  # a KV-cache graph run on whole texts: an empty past

    def bundle_info(self, data) -> dict:
        """The task's part of kdpipe.json: what the output means."""
        return {"output": {"name": "logits", "shape": ["batch", "sequence", len(data.tokenizer)]}}

    def write_bundle(self, folder, onnx_model, variant, saved_source, data, metric, cfg) -> dict:
        """model.onnx with the model's config.json and tokenizer files: loadable with optimum's
        ORTModelFor... classes, or plain onnxruntime plus the tokenizer."""
        # the columns it was trained on: predict and evaluate read a CSV of the same layout by them
        columns = {"text_column": cfg.data.text_column, "label_column": cfg.data.label_column}
        return hf_export.write_bundle(folder, onnx_model, variant, saved_source, data, metric, self, columns)

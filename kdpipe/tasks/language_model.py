"""Language models: next-token prediction (causal-lm, decoders) and masked LM (masked-lm, encoders).

Text is tokenized (a tokenizer from the teacher's folder, or one trained here on the text), packed
into blocks of `data.sequence_length` tokens and split by block. Models come from transformers
(`hf:` folders or hub ids, `hf-config:` for models built here); the student is given explicitly or
derived from the teacher (`derive:teacher`, fewer layers initialised from teacher layers). KD is
token-level over the shared vocabulary. Export goes through optimum.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdpipe.data.splits import Split, split_indices
from kdpipe.errors import ConfigError, DataError, ModelError
from kdpipe.tasks.base import MASKED_ACCURACY, PERPLEXITY, Task

OPTIMUM_TASKS = {"causal-lm": "text-generation", "masked-lm": "fill-mask"}
FUSABLE = {"gpt2": "gpt2", "bert": "bert", "roberta": "bert", "distilbert": "bert"}  # transformers -> ORT names


class LMLogits(nn.Module):
    """A transformers LM as a module from token ids to logits (what the training loop expects)."""

    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # packed blocks hold no padding: every position attends (explicit, so transformers need not guess)
        return self.hf(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits


@dataclass
class LMData:
    train: Split
    val: Split
    test: Split
    tokenizer: object
    sequence_length: int
    sha256: str
    labels: None = None

    @property
    def num_classes(self) -> int:
        return len(self.tokenizer)


class LanguageModel(Task):
    kind: str  # tokenizer kind: causal | masked
    # The matrix multiplications hold the weights and the time; the attention-mask arithmetic
    # (-inf fills) cannot be calibrated and gains nothing from int8.
    quantize_op_types = ["MatMul", "Gemm"]
    # Token embeddings (Gather) are a large share of a small LM's bytes: int8 in dynamic mode.
    dynamic_extra_ops = ["Gather"]

    # --- data ----------------------------------------------------------------------------
    def load_data(self, cfg) -> LMData:
        from kdpipe.data.text import load_texts, mask_tokens, pack, train_tokenizer

        dc = cfg.data
        texts = load_texts(dc.source, dc.text_column)
        if cfg.teacher.model.startswith("hf:"):
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(cfg.teacher.model[3:])
            except (OSError, ValueError) as e:
                raise ModelError(f"teacher.model {cfg.teacher.model!r}: no tokenizer next to the model ({e})") from None
        else:  # a teacher built here gets a tokenizer trained here, on the text
            tok = train_tokenizer(texts, self.kind, dc.vocab_size)
        sep = tok.eos_token_id if self.kind == "causal" else tok.sep_token_id
        blocks = pack(texts, tok, dc.sequence_length, sep)
        rng = np.random.default_rng(cfg.seed)
        if dc.limit is not None and dc.limit < len(blocks):
            blocks = blocks[np.sort(rng.permutation(len(blocks))[: dc.limit])]
        if self.kind == "masked":
            x, y = mask_tokens(blocks, tok, dc.mask_prob, rng)
        else:
            x, y = blocks, blocks
        # Blocks have no class: split_indices stratifies on one dummy class, i.e. a seeded shuffle.
        tr, va, te = split_indices(np.zeros(len(blocks), dtype=np.int64), dc.split, cfg.seed)
        if min(len(tr), len(va), len(te)) == 0:
            raise DataError(f"data: {len(blocks)} blocks of {dc.sequence_length} tokens are too few to split "
                            f"{tuple(dc.split)}; use more text or a shorter data.sequence_length")
        digest = hashlib.sha256(blocks.tobytes()).hexdigest()
        return LMData(Split(x[tr], y[tr]), Split(x[va], y[va]), Split(x[te], y[te]), tok, dc.sequence_length, digest)

    # --- models --------------------------------------------------------------------------
    def _hf_params(self, cfg, section, data) -> dict:
        params = dict(section.params)
        if section.model.startswith("hf-config:"):
            params.setdefault("vocab_size", len(data.tokenizer))
            if section.model == "hf-config:gpt2":
                params.setdefault("n_positions", max(data.sequence_length, 64))
                params.update(bos_token_id=data.tokenizer.bos_token_id, eos_token_id=data.tokenizer.eos_token_id)
            else:
                params.setdefault("max_position_embeddings", max(data.sequence_length, 64))
            params.setdefault("pad_token_id", data.tokenizer.pad_token_id)
        return params

    def build(self, role, cfg, data, teacher=None):
        from kdpipe.models.hf import build_hf, derive_student

        section = getattr(cfg, role)
        spec = {"model": section.model, "params": dict(section.params)}
        if role == "student" and section.model == "derive:teacher":
            if teacher is None:
                raise ConfigError("student.model derive:teacher needs the teacher")
            unknown = set(section.params) - {"layers"}
            if unknown:
                raise ConfigError(f"student.params: derive:teacher takes only 'layers' (got {sorted(unknown)})")
            hf, chosen = derive_student(teacher.hf, section.params.get("layers", "every_other"))
            spec["teacher_layers"] = chosen
            return LMLogits(hf), spec
        hf = build_hf(section.model, self._hf_params(cfg, section, data), self.name, f"{role}.model",
                      trust_remote_code=getattr(section, "trust_remote_code", False))
        return LMLogits(hf), spec

    def preflight(self, cfg, data) -> None:
        teacher, _ = self.build("teacher", cfg, data)
        student, _ = self.build("student", cfg, data, teacher)
        t_cfg, s_cfg = teacher.hf.config, student.hf.config
        if t_cfg.vocab_size != s_cfg.vocab_size:
            raise ModelError(f"teacher and student vocabularies differ ({t_cfg.vocab_size} vs {s_cfg.vocab_size} "
                             "tokens): token-level KD needs the same vocabulary")
        if len(data.tokenizer) > t_cfg.vocab_size:
            raise ModelError(f"the tokenizer has {len(data.tokenizer)} tokens but the models only {t_cfg.vocab_size}")
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
            a, b = getattr(t_cfg, attr, None), getattr(s_cfg, attr, None)
            if a is not None and b is not None and a != b:
                raise ModelError(f"teacher and student special tokens differ: {attr} {a} vs {b}")
        ids = torch.from_numpy(data.train.x[:2])
        with torch.inference_mode():
            for role, m in (("teacher", teacher), ("student", student)):
                out = m.eval()(ids)
                if tuple(out.shape) != (*ids.shape, t_cfg.vocab_size):
                    raise ModelError(f"{role}.model: logits of shape {tuple(out.shape)}, expected "
                                     f"{(*ids.shape, t_cfg.vocab_size)}")

    def losses(self, cfg):
        from kdpipe.training.lm_losses import lm_kd_loss

        dc, shift = cfg.distill, self.kind == "causal"

        def aligned(s, t, y):  # causal: position t predicts token t+1
            return (s[:, :-1], None if t is None else t[:, :-1], y[:, 1:]) if shift else (s, t, y)

        def hard(s, t, y):
            s, _, y = aligned(s, None, y)
            return nn.functional.cross_entropy(s.reshape(-1, s.shape[-1]).float(), y.reshape(-1), ignore_index=-100)

        def kd(s, t, y):
            s, t, y = aligned(s, t, y)
            return lm_kd_loss(s, t, y, divergence=dc.divergence, beta=dc.beta, temperature=dc.temperature,
                              alpha=dc.alpha)

        return hard, kd

    # --- files ---------------------------------------------------------------------------
    def save(self, model, folder, name, spec, data) -> Path:
        path = folder / name
        model.hf.cpu().save_pretrained(path)
        data.tokenizer.save_pretrained(path)
        (path / "kdpipe_spec.json").write_text(json.dumps({**spec, "task": self.name}))
        return path

    def load(self, path, where):
        import transformers

        from kdpipe.models.hf import AUTO_CLASSES

        try:
            hf = getattr(transformers, AUTO_CLASSES[self.name]).from_pretrained(path)
            spec = json.loads((Path(path) / "kdpipe_spec.json").read_text())
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise ModelError(f"{where}: cannot load {path} ({' '.join(str(e).split())[:200]})") from None
        return LMLogits(hf).eval(), spec

    def export_onnx(self, model, saved, out, opset, data) -> None:
        import warnings

        from optimum.exporters.onnx import main_export

        # optimum reports on stdout, in warnings and its loggers; kdpipe's output is for results, and
        # the export is checked against torch by the export stage itself.
        import logging

        import transformers

        transformers.logging.set_verbosity_error()
        for name in ("optimum", "optimum.exporters", "optimum.onnx"):
            logging.getLogger(name).setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            main_export(str(saved), tmp, task=OPTIMUM_TASKS[self.name], opset=opset, device="cpu",
                        do_validation=False, library_name="transformers")
            shutil.move(str(Path(tmp) / "model.onnx"), out)

    def fuse(self, onnx_path, out, model) -> dict | None:
        """Attention, SkipLayerNormalization, Gelu ... fusions of onnxruntime.transformers for the model
        types it knows; counted per fused operator for the report."""
        from onnxruntime.transformers.optimizer import optimize_model

        config = model.hf.config
        if config.model_type not in FUSABLE:
            return None
        with contextlib.redirect_stdout(io.StringIO()):
            fused = optimize_model(str(onnx_path), model_type=FUSABLE[config.model_type],
                                   num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=1)
        stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
        if not stats:
            return None
        fused.save_model_to_file(str(out))
        return stats

    def feeds(self, input_names, x: np.ndarray) -> dict:
        fill = {
            "input_ids": lambda: x,
            "attention_mask": lambda: np.ones_like(x),  # packed blocks: every position is real text
            "token_type_ids": lambda: np.zeros_like(x),
            "position_ids": lambda: np.broadcast_to(np.arange(x.shape[1], dtype=np.int64), x.shape).copy(),
        }
        missing = [n for n in input_names if n not in fill]
        if missing:
            raise ModelError(f"the ONNX model asks for inputs kdpipe cannot fill: {', '.join(missing)}")
        return {n: fill[n]() for n in input_names}

    def write_bundle(self, folder, onnx_model, variant, saved_source, data, metric, cfg) -> dict:
        """model.onnx with the model's config.json and tokenizer files: loadable with optimum's
        ORTModelFor... classes, or plain onnxruntime plus the tokenizer."""
        from kdpipe import __version__
        from kdpipe.pipeline.artifacts import atomic_write_json

        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_model, folder / "model.onnx")
        for f in Path(saved_source).iterdir():
            if f.suffix in (".json", ".txt") and f.name not in ("kdpipe_spec.json", "generation_config.json"):
                shutil.copyfile(f, folder / f.name)
        info = {
            "format": "kdpipe-bundle", "format_version": 1, "created_by": f"kdpipe {__version__}", "task": self.name,
            "model": "model.onnx", "variant": variant, "tokenizer": "tokenizer.json",
            "inputs": ["input_ids", "attention_mask"], "max_sequence_length": data.sequence_length,
            "output": {"name": "logits", "shape": ["batch", "sequence", len(data.tokenizer)]},
            "metric": metric,
        }
        atomic_write_json(folder / "kdpipe.json", info)
        return info


class CausalLM(LanguageModel):
    name = "causal-lm"
    kind = "causal"
    metric = PERPLEXITY


class MaskedLM(LanguageModel):
    name = "masked-lm"
    kind = "masked"
    metric = MASKED_ACCURACY

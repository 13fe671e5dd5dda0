"""What every transformers task shares: tokenizer, models (given, built from a config, or derived
from the teacher), model folders, export, graph fusions, session inputs and the bundle.

The tasks on top (language_model, text_classification, embedding) add their data, losses and
checks. Models are HFModule wrappers (token ids -> one tensor), so the training loop, evaluation
and the stages treat them like any other model.
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

from kdpipe.data.splits import Split
from kdpipe.errors import ConfigError, DataError, ModelError
from kdpipe.models.checks import check_trainable
from kdpipe.models.hf import HFModule
from kdpipe.tasks.base import Task

FUSABLE = {"gpt2": "gpt2", "bert": "bert", "roberta": "bert", "distilbert": "bert"}  # transformers -> ORT names
DERIVE_PARAMS = {"layers", "hidden_size", "num_attention_heads", "intermediate_size", "init"}


@dataclass
class TextData:
    train: Split
    val: Split
    test: Split
    tokenizer: object
    sequence_length: int
    sha256: str
    labels: list[str] | None = None  # classification only
    other: Split | None = None  # data.other_source: a second test set from another source
    max_length: int | None = None  # the longest input the bundle takes, when more than sequence_length

    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.labels else len(self.tokenizer)


def encode(tokenizer, texts: list[str], length: int, pad_to_longest: bool = False) -> np.ndarray:
    """Padded texts as the models and apps take them: ids and attention mask stacked, [n, 2, length]
    (or as long as the longest text, up to `length`)."""
    enc = tokenizer(texts, truncation=True, max_length=length, padding="longest" if pad_to_longest else "max_length",
                    return_tensors="np")
    return np.stack([enc["input_ids"], enc["attention_mask"]], axis=1).astype(np.int64)


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def extra_texts(cfg, held_out: set[str]) -> list[str]:
    """data.extra_texts (one source or several), without any text that overlaps one held out
    (validation, test, other source: kdpipe.data.overlap), sampled down to data.extra_texts_max (and
    data.limit, for quick runs)."""
    from kdpipe.data.overlap import RUN, drop_overlapping
    from kdpipe.data.registry import load_texts
    from kdpipe.progress import say

    dc = cfg.data
    if not dc.extra_texts:
        return []
    sources = [dc.extra_texts] if isinstance(dc.extra_texts, str) else dc.extra_texts
    loaded = dict.fromkeys(t for source in sources for t in load_texts(source, dc.text_column))
    texts, dropped = drop_overlapping(list(loaded), held_out)
    if dropped:
        say(f"data.extra_texts: {dropped} of {len(loaded)} texts left out: they share {RUN} words in a row "
            "with (or lie inside) a validation, test or other-source text")
    most = min(n for n in (dc.limit, dc.extra_texts_max, len(texts)) if n is not None)
    if most < len(texts):
        rng = np.random.default_rng(cfg.data_seed + 13)
        texts = [texts[i] for i in np.sort(rng.permutation(len(texts))[:most])]
    return texts


def teacher_max_length(cfg, tokenizer, teacher) -> int:
    """The longest input the teacher takes: a sentence-transformers folder's max_seq_length, else the
    tokenizer's model_max_length, within the model's position embeddings (a drop-in student takes
    as much; it shares the teacher's position embeddings)."""
    limit = None
    if cfg.teacher.model.startswith("hf:"):
        st = Path(cfg.teacher.model[3:]) / "sentence_bert_config.json"
        if st.is_file():
            limit = json.loads(st.read_text()).get("max_seq_length")
    limit = limit or (tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None)
    positions = getattr(teacher.hf.config, "max_position_embeddings", None)
    limit = min(x for x in (limit, positions) if x) if (limit or positions) else cfg.data.sequence_length
    return max(int(limit), cfg.data.sequence_length)


OTHER_MAX = 1000  # texts of data.other_source scored: a sample with the data seed is enough for a mean


def other_texts(cfg, seen: set[str], label_column: str | None = None) -> tuple[list[str], list[str] | None]:
    """data.other_source: texts (and labels) from another source, without any the models trained on;
    at most OTHER_MAX (or data.limit) of them, sampled with the data seed."""
    from kdpipe.data.registry import load_labelled_texts

    dc = cfg.data
    texts, labels = load_labelled_texts(dc.other_source, dc.text_column, label_column)
    keep = [i for i, t in enumerate(texts) if t not in seen]
    most = min(OTHER_MAX, dc.limit or OTHER_MAX)
    if most < len(keep):
        keep = sorted(np.random.default_rng(cfg.data_seed + 17).permutation(keep)[:most].tolist())
    if len(keep) < 2:
        raise DataError(f"data.other_source {dc.other_source}: {len(keep)} texts the models did not train on; "
                        "need at least 2")
    return [texts[i] for i in keep], (None if labels is None else [labels[i] for i in keep])


def other_and_extra_texts(cfg, texts: list[str], train_idx, held_idx, label_column: str | None = None):
    """(other-source texts, their labels, extra texts): data.other_source without any training text,
    and data.extra_texts without any text that is held out (validation, test, other source)."""
    o_texts, o_labels = (other_texts(cfg, {texts[i] for i in train_idx}, label_column) if cfg.data.other_source
                         else ([], None))
    return o_texts, o_labels, extra_texts(cfg, {texts[i] for i in held_idx} | set(o_texts))


@dataclass
class PruneWidths:
    hidden: int  # hidden channels kept
    heads: int  # heads each block keeps
    had: int  # heads each block had
    neurons: int  # FFN neurons kept


def prune_widths(hf, pc) -> PruneWidths:
    """What the prune section keeps of this transformer; a clear ConfigError where it cannot (checked
    in pre-flight too, before any training)."""
    from kdpipe.models.hf_prune import heads_per_block

    cfg = hf.config
    head = cfg.hidden_size // cfg.num_attention_heads
    hidden = pc.ratio if pc.hidden is None else pc.hidden
    ffn = pc.ratio if pc.ffn is None else pc.ffn
    width = max(1, round(cfg.num_attention_heads * (1 - hidden)))  # heads the kept width holds
    had = min(heads_per_block(hf))
    heads = min(width, had) if pc.heads is None else max(1, round(had * (1 - pc.heads)))
    if heads > width:
        raise ConfigError(f"prune.heads: keeping {heads} of {had} heads needs a hidden width of {heads * head}; "
                          f"prune.hidden leaves {width * head}")
    neurons = max(1, round(cfg.intermediate_size * (1 - ffn)))
    if pc.round_to:
        neurons = max(pc.round_to, neurons // pc.round_to * pc.round_to)
    if pc.layers >= cfg.num_hidden_layers:
        raise ConfigError(f"prune.layers: {pc.layers} would remove all {cfg.num_hidden_layers} layers of the student")
    return PruneWidths(width * head, heads, had, neurons)


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
            if self.pool:
                self._export_pooled(model, data, out, opset)
                return
            if not self._optimum_exports(model):  # e.g. BERT as a causal LM (is_decoder): torch.onnx directly
                self._export_torch(model, data, out, opset)
                return
            from optimum.exporters.onnx import main_export

            main_export(str(saved), tmp, task=self.optimum_task, opset=opset, device="cpu",
                        do_validation=False, library_name="transformers")
            shutil.move(str(Path(tmp) / "model.onnx"), out)

    def _optimum_exports(self, model) -> bool:
        """Whether optimum has an ONNX recipe for this model type and task."""
        import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX recipes)
        from optimum.exporters.tasks import TasksManager

        try:
            tasks = TasksManager.get_supported_tasks_for_model_type(model.hf.config.model_type, "onnx",
                                                                     library_name="transformers")
        except KeyError:
            return False
        return self.optimum_task in tasks

    def _export_torch(self, model, data, out, opset) -> None:
        """torch.onnx for what optimum has no recipe for: the same inputs and output names as optimum's
        export (input_ids, attention_mask -> logits), dynamic batch and sequence axes."""
        ids = torch.from_numpy(data.train.x[:2])
        if ids.dim() == 3:
            ids = ids[:, 0]
        torch.onnx.export(model.eval(), (ids, torch.ones_like(ids)), str(out), opset_version=opset, dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask",
                                                                                  "logits")})

    @staticmethod
    def _export_pooled(model, data, out, opset) -> None:
        """Sentence embedders export with pooling (and projection) inside the graph, so an app gets
        the embedding from one call, as sentence-transformers' own ONNX exports do."""
        x = torch.from_numpy(data.train.x[:2])
        torch.onnx.export(model.eval(), (x[:, 0], x[:, 1]), str(out), input_names=["input_ids", "attention_mask"],
                          output_names=["sentence_embedding"], opset_version=opset, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "sentence_embedding": {0: "batch"}})

    def fuse(self, onnx_path, out, model) -> dict | None:
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

    def feeds(self, input_names, x: np.ndarray) -> dict:
        # padded texts carry their mask; in packed LM blocks every position is real text
        ids, mask = (x[:, 0], x[:, 1]) if x.ndim == 3 else (x, np.ones_like(x))
        fill = {
            "input_ids": lambda: ids,
            "attention_mask": lambda: mask,
            "token_type_ids": lambda: np.zeros_like(ids),
            "position_ids": lambda: np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy(),
        }
        missing = [n for n in input_names if n not in fill]
        if missing:
            raise ModelError(f"the ONNX model asks for inputs kdpipe cannot fill: {', '.join(missing)}")
        return {n: fill[n]() for n in input_names}

    def bundle_info(self, data) -> dict:
        """The task's part of kdpipe.json: what the output means."""
        return {"output": {"name": "logits", "shape": ["batch", "sequence", len(data.tokenizer)]}}

    def write_bundle(self, folder, onnx_model, variant, saved_source, data, metric, cfg) -> dict:
        """model.onnx with the model's config.json and tokenizer files: loadable with optimum's
        ORTModelFor... classes, or plain onnxruntime plus the tokenizer."""
        from kdpipe.bundle import write_info

        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_model, folder / "model.onnx")
        for f in Path(saved_source).iterdir():
            if f.suffix in (".json", ".txt") and f.name not in ("kdpipe_spec.json", "generation_config.json"):
                shutil.copyfile(f, folder / f.name)
        return write_info(folder, task=self.name, variant=variant, metric=metric, fields={
            "tokenizer": "tokenizer.json", "inputs": ["input_ids", "attention_mask"],
            "max_sequence_length": data.max_length or data.sequence_length,
            "trained_sequence_length": data.sequence_length,
            "padding": "right, attention_mask 0 on padding" if self.padded else "none (attention_mask all ones)",
            **self.bundle_info(data)})

"""The typed run configuration: every section, every key with its default and its check.

Every key has a default here, so `kdpipe show-config` prints the whole resolved config (load.py reads
the YAML file and the --set overrides into it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from kdpipe.data.registry import parse as parse_source
from kdpipe.errors import DataError

TRANSFORMERS = ("hf:", "hf-config:")  # model specs that name transformers models

Fraction = float


def at_most(limit: int | float, why: str) -> AfterValidator:
    """An upper bound that says why it is there: a count no run can use (1e23 epochs, a batch of
    a billion) is refused in the config check, not met as an overflow deep inside a stage."""
    def check(v):
        if v is not None and v > limit:
            raise ValueError(f"at most {limit:,} ({why})")
        return v

    return AfterValidator(check)


# The limits on counts: each far above any real run, low enough that what follows cannot overflow.
Epochs = Annotated[int, at_most(100_000, "epochs are passes over the training split; no run finishes more")]
Seed = Annotated[int, Field(ge=0), at_most(2**32 - 1, "numpy and torch take 32-bit seeds")]
Samples = Annotated[int, at_most(10**9, "more samples than any data set kdpipe loads into memory")]


class Section(BaseModel):
    # allow_inf_nan: no setting takes inf or NaN (pydantic's float would pass them to the stages, and a
    # JSON round trip turns them into null)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(Section):
    source: str = Field("builtin:mnist-5k", description="builtin:NAME, npz:PATH, csv:PATH, folder:PATH; text: "
                        "text:PATH, jsonl:PATH, csv:PATH, hf-disk:PATH (datasets.load_from_disk), hf-hub:NAME")
    label_column: str = "label"
    labels: list[str] | None = None
    image_size: (
        tuple[
            Annotated[int, Field(ge=1), at_most(16_384, "pixels a side; images are resized to it")],
            Annotated[int, Field(ge=1), at_most(16_384, "pixels a side; images are resized to it")],
        ]
        | None
    ) = None
    channels: Literal[1, 3] = 1
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    batch_size: Samples = Field(64, ge=1, description="global batch, whatever the number of processes (more than "
                                "the training split: one batch of the whole split)")
    micro_batch_size: Samples | None = Field(None, ge=1, description="max samples per forward pass per process")
    limit: Samples | None = Field(None, ge=10, description="use only this many samples (quick runs)")
    text_column: str = Field("text", description="text tasks: the text field of JSONL/CSV/datasets sources")
    drop_unlabelled: bool = Field(False, description="rows of a labelled CSV/JSONL without a label: left out with a "
                                                      "note (true), or refused, naming them (false)")
    sequence_length: int = Field(128, ge=8, le=8192, description="text tasks: tokens per block (LM) or per text")
    vocab_size: Annotated[int, at_most(1_000_000, "tokens in a vocabulary trained here")] = Field(
        2000, ge=100, description="language models: size of a tokenizer trained here")
    mask_prob: float = Field(0.15, gt=0, lt=1, description="masked LM: fraction of tokens to predict")
    split_seed: Seed | None = Field(None, description="seeds the split (and the sample of data.limit and of "
                                   "label_fraction); default: seed. kdpipe sweep fixes it so every seed is tested on "
                                   "the same data")
    label_fraction: float = Field(1.0, gt=0, le=1, description="classification: keep the labels of this fraction of "
                                  "the training split (per class); KD still learns from every training input through "
                                  "the teacher, the no-KD baseline (and a teacher trained here) from the labelled ones")
    extra_texts: str | list[str] | None = Field(
        None, description="embedding and text classification: more texts, without labels, added to the training split "
                          "for the KD loss (the no-KD baseline never sees them); one source or a list of them; texts "
                          "that share 8 words in a row with (or lie inside) a validation, test or other-source text "
                          "are left out")
    extra_texts_max: Samples | None = Field(None, ge=1, description="at most this many of data.extra_texts, sampled "
                                                                    "with "
                                        "the data seed (KD's steps grow with the texts; the teacher's and the "
                                        "baseline's do not)")
    other_source: str | None = Field(None, description="embedding and text classification: texts from another source, "
                                     "scored as a second test set ('other source' in the report; at most 1,000 "
                                     "texts, sampled with the seed); labelled with the same labels for classification")

    @model_validator(mode="after")
    def _max_needs_texts(self):
        if self.extra_texts_max is not None and not self.extra_texts:
            raise ValueError("extra_texts_max is set but data.extra_texts names no texts")
        return self

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v):
        if any(p <= 0 for p in v):
            raise ValueError("each of train/validation/test must be > 0")
        if abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"train/validation/test fractions must add up to 1 (they add up to {sum(v):g})")
        return v


class TrainConfig(Section):
    epochs: Epochs = Field(10, ge=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup: float = Field(0.0, ge=0, lt=1, description="fraction of steps with a linear learning-rate warm-up")


class TeacherConfig(Section):
    model: str = "builtin:cnn"
    params: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = Field(None, description="checkpoint (.safetensors, or .pt/.pth loaded weights_only)")
    trust_remote_code: bool = Field(False, description="hf: models only; runs the model repository's code")
    finetune: bool = Field(False, description="train a given teacher (hf: or weights) on the data first, "
                                              "with teacher.train")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=15))
    labels: Literal["kept", "all"] = Field("kept", description="a teacher trained here, with data.label_fraction < 1: "
                                           "from the kept labels only, or from every training label (a teacher made "
                                           "where more labels were at hand than the student's data keeps)")


DEFAULT_STUDENT = {"model": "builtin:mlp", "params": {"hidden": [128]}}


class StudentConfig(Section):
    model: str = DEFAULT_STUDENT["model"]
    params: dict[str, Any] = Field(default_factory=dict, description="the model's own arguments (builtin:mlp alone "
                                                                     "defaults to hidden: [128])")
    trust_remote_code: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_params_for_the_default_model(cls, data):
        # hidden: [128] is builtin:mlp's: a python:, torchvision: or other student takes its own defaults
        if isinstance(data, dict) and "params" not in data and data.get("model", DEFAULT_STUDENT["model"]) == \
                DEFAULT_STUDENT["model"]:
            data = {**data, "params": dict(DEFAULT_STUDENT["params"])}
        return data


LayerMap = list[tuple[int, int]]


class IntermediateConfig(Section):
    """Matching of intermediate layers (transformers): [student_layer, teacher_layer] pairs, layer 0
    being the embeddings' output and i the output of block i; "auto" maps the student's blocks
    evenly onto the teacher's (or onto the teacher layers a derived student came from)."""

    hidden: LayerMap | Literal["auto"] | None = None
    attention: LayerMap | Literal["auto"] | None = None
    hidden_weight: float = Field(1.0, ge=0)
    attention_weight: float = Field(1.0, ge=0)

    @property
    def enabled(self) -> bool:
        return bool(self.hidden or self.attention)


class DistillConfig(Section):
    epochs: Annotated[int, Field(ge=1), at_most(100_000, "epochs are passes over the training split; no run "
                                                         "finishes more")] | Literal["auto"] = Field(
        30, description="passes over the training split; auto: until the validation loss stops improving "
                        "(patience), at most max_epochs or max_minutes, the best epoch kept; the baseline alike")
    patience: int = Field(3, ge=1, description="epochs: auto: epochs without a lower validation loss before stopping")
    max_epochs: Epochs = Field(40, ge=1, description="epochs: auto: the most epochs the student trains")
    max_minutes: float | None = Field(None, gt=0, description="epochs: auto: the most minutes each training may take")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup: float = Field(0.0, ge=0, lt=1, description="fraction of steps with a linear learning-rate warm-up")
    temperature: float = Field(8.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    divergence: Literal["forward_kl", "reverse_kl", "jsd"] = "forward_kl"
    beta: float = Field(0.5, gt=0, lt=1, description="generalized JSD's beta (divergence: jsd)")
    baseline: bool = True
    cache_teacher: bool = Field(True, description="compute teacher outputs (and matched hidden states) once; "
                                                  "the inputs do not change")
    cache_format: Literal["dense", "topk", "sampled"] = Field(
        "dense", description="language models: dense logits, or sparse per token: the top-k probabilities, or "
                             "k tokens sampled from the teacher (unbiased)")
    cache_k: Annotated[int, at_most(1_000_000, "entries a token: more than any vocabulary")] = Field(
        32, ge=1, description="entries a token for cache_format topk/sampled"
    )
    embedding_loss: Literal["cosine", "mse", "cosine+mse"] = Field("cosine+mse", description="embedding task")
    freeze_embeddings: bool = Field(False, description="transformers: keep the student's token embedding table as it "
                                    "starts (a derived student's is the teacher's), for the KD student and the "
                                    "baseline alike; on a 30k-token vocabulary most of the optimiser's work")
    dropout: float | None = Field(None, ge=0, lt=1, description="the student's (and the baseline's) dropout rate while "
                                  "they train; null keeps the model's own (a derived transformer: the teacher's)")
    intermediate: IntermediateConfig = Field(default_factory=IntermediateConfig)

    @property
    def epochs_at_most(self) -> int:
        """The epochs the student trains at most: epochs, or with epochs: auto, max_epochs."""
        return self.max_epochs if self.epochs == "auto" else self.epochs


class PruneConfig(Section):
    enabled: bool = True
    method: Literal["structured"] = "structured"
    ratio: float = Field(0.3, gt=0, lt=1)
    round_to: int | None = Field(None, ge=1, description="keep widths that are multiples of this (e.g. 8)")
    hidden: float | None = Field(None, ge=0, lt=1, description="transformers: share of hidden channels removed, "
                                                               "attention heads with them (default: ratio)")
    heads: float | None = Field(None, ge=0, lt=1, description="transformers: share of attention heads removed, the "
                                                             "head size kept (default: as many as go with the hidden "
                                                             "channels); more than those lets the width stay")
    ffn: float | None = Field(None, ge=0, lt=1, description="transformers: share of FFN neurons removed (default: "
                                                            "ratio)")
    layers: Annotated[int, at_most(10_000, "layers of a model")] = Field(0, ge=0, description="transformers: whole "
                                                                                              "layers removed by "
                                                                                              "greedy search, each "
                                                                                              "step the "
                                             "one whose absence changes the output least")
    finetune: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=5, lr=5e-4))


QuantVariant = Literal["dynamic", "static", "fp16", "int4", "qad-int8", "qad-int4"]
Calibration = Literal["minmax", "entropy", "percentile"]


class QADConfig(Section):
    """Quantization-aware distillation (quantize.variants qad-int8, qad-int4): the quantize source, with
    its layers computing as onnxruntime's int8 or int4 kernels will, trained on the fp32 teacher's
    outputs with the distill section's KD loss (temperature, alpha; labels where there are)."""

    epochs: Epochs | None = Field(None, ge=1, description="passes over the training split; null: a third of the "
                                                          "epochs the student trained in distill, at least 1")
    lr: float | None = Field(None, gt=0, description="null: a tenth of distill.lr (a fine-tune of trained weights)")
    weight_decay: float = Field(0.0, ge=0)
    warmup: float = Field(0.0, ge=0, lt=1)
    teacher: bool = Field(False, description="also distil the teacher into its own quantized form (teacher-int8-qad, "
                                             "teacher-int4-qad): the teacher corrects its own quantization")
    learn_scales: bool = Field(False, description="qad-int8: learn each linear layer's per-channel weight scales "
                                                  "(LSQ) instead of deriving them from the weights on every step")


class QuantizeConfig(Section):
    enabled: bool = True
    source: Literal["auto", "student", "pruned"] = "auto"
    variants: list[QuantVariant] = Field(default_factory=lambda: ["dynamic", "static", "fp16"])
    calibration: list[Calibration] = Field(default_factory=lambda: ["minmax", "percentile"])
    calibration_samples: Samples = Field(512, ge=1)
    per_channel: bool | Literal["auto"] = Field("auto", description="per-channel int8 weights; auto: dynamic int8 is "
                                                  "made both ways and the less damaged against its fp32 source on "
                                                  "validation kept (static: plain)")
    reduce_range: bool | Literal["auto"] = Field(
        True, description="7-bit int8 weights (onnxruntime's reduce_range): x86 CPUs without VNNI add pairs of "
                          "uint8 x int8 products in 16 bits, which full-range weights can overflow, so a bundle's "
                          "outputs would depend on the CPU it runs on; false: full range (more precise on VNNI and "
                          "ARM CPUs only); auto: dynamic int8 made both ways, the less damaged on validation kept")
    activation_matmuls: bool | Literal["auto"] = Field(
        "auto", description="dynamic int8: also quantize MatMuls between two activations (attention's Q.K and "
                            "weights.V, as optimum's dynamic configs do); auto: made both ways where the graph has "
                            "such MatMuls, the less damaged on validation kept")
    op_types: list[str] | None = Field(None, description="quantize only these ONNX op types, e.g. [MatMul, Gemm] to "
                                                         "keep convolutions fp32 (default: the task's choice)")
    search: bool = Field(True, description="when the best int8 variant loses more than export.max_drop against its "
                                           "fp32 source on validation, keep its most sensitive nodes in float until "
                                           "it is within (the -mixed variant)")
    search_minutes: float | None = Field(10.0, gt=0, description="the accuracy-aware search tries mixes until this "
                                                                 "many minutes are spent (null: no limit)")
    teacher: bool = Field(True, description="also quantize the teacher (dynamic int8, plain and per-channel): "
                                            "what a user gets without distillation, a row of every report")
    int4_block_size: Literal[16, 32, 64, 128, 256] = Field(
        32, description="int4 variant (weight-only, onnxruntime's MatMulNBits): weights per scale, along the input axis"
    )
    int4_accuracy_level: Literal[0, 1, 2, 3, 4] = Field(
        4, description="int4 variant: what the CPU kernel computes in; 4: int8 (the fastest on x86), 0: fp32")
    int4_embeddings: bool = Field(True, description="int4 variant: the embedding tables in int4 too "
                                                    "(GatherBlockQuantized); false keeps them fp32")
    qad: QADConfig = Field(default_factory=QADConfig)


class BudgetConfig(Section):
    """What the bundle must meet, measured on this machine (batch 1, benchmark.threads, the CPU
    provider): with a budget, auto ships the most accurate variant that meets it."""

    latency_ms: float | None = Field(None, gt=0, description="batch-1 p50 latency, milliseconds")
    size_mb: float | None = Field(None, gt=0, description="the model file, MiB")
    speedup: float | None = Field(None, gt=0, description="batch-1 speed against the teacher's ONNX fp32 (2 = twice "
                                                          "as fast)")


class ExportConfig(Section):
    opset: int = Field(17, ge=13, le=21)
    bundle: str = Field("auto", description="auto, or a variant name such as student or pruned-int8-dynamic")
    max_drop: float = Field(1.0, ge=0, description="auto ships the fastest variant within this many validation "
                                                   "points (metric units) of the teacher, else the most accurate")
    budget: BudgetConfig | None = Field(None, description="latency_ms, size_mb and/or speedup the bundle must meet: "
                                                         "auto then ships the most accurate variant that meets them")
    license: str | None = Field(None, description="the bundle's licence for its model card (an SPDX id such as "
                                                  "apache-2.0 or mit): the terms of the teacher and of the data "
                                                  "decide it")


class BenchmarkConfig(Section):
    providers: list[Literal["cpu", "cuda"]] = Field(default_factory=lambda: ["cpu", "cuda"])
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 64])
    sequence_lengths: list[int] | None = Field(None, description="text tasks: also time these input lengths "
                                                                  "(at most data.sequence_length)")
    warmup: Annotated[int, at_most(1_000_000, "untimed calls a model")] = Field(
        10,
        ge=0,
        description="untimed calls before timing each model and input; fewer once they "
        "have taken min_seconds / rounds (a slow call is warm after one)",
    )
    min_seconds: Annotated[float, at_most(86_400, "a day of timing for each model and input")] = Field(1.0, gt=0)
    min_runs: Annotated[int, at_most(10**7, "timed calls a model")] = Field(20, ge=1)
    rounds: Annotated[int, at_most(10_000, "rounds of timing")] = Field(5, ge=1, description="models are timed side "
                                                                                             "by side in this many "
                                                                                             "rounds, each taking "
                                                                                             "its "
                                             "share of min_seconds and min_runs, so load on the machine falls on all "
                                             "alike")
    threads: Annotated[int, at_most(4096, "threads of one process")] = Field(
        0, ge=0, description="intra-op threads of every timing; 0 = the machine's cores (onnxruntime's default)")
    torch_teacher: bool = True
    prompt_tokens: int = Field(64, ge=1, le=100_000, description="causal-lm generation timing: the prompt's tokens "
                                                                 "(from a test block; at most its length)")
    new_tokens: int = Field(128, ge=2, le=100_000, description="causal-lm generation timing: tokens generated "
                                                               "after the prompt (within the model's positions)")

    def thread_count(self) -> int:
        """The intra-op threads every timing uses, onnxruntime and PyTorch alike: `threads`, or the
        cores this process may run on when it is 0."""
        from kdpipe.runtime.machine import default_threads  # (imports torch: not for every config read)

        return self.threads or default_threads()

    def timing(self) -> dict:
        """measure_rounds' settings: the benchmark and the export's bundle choice time alike."""
        return dict(warmup=self.warmup, min_seconds=self.min_seconds, min_runs=self.min_runs, rounds=self.rounds)

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v):
        if not v or any(b < 1 for b in v):
            raise ValueError("batch sizes must be a non-empty list of integers >= 1")
        if max(v) > 1_000_000:
            raise ValueError("batch sizes: at most 1,000,000 (inputs of one timed call, held in memory)")
        return v


class SweepConfig(Section):
    """`kdpipe sweep`: a family of students, each with and without KD, over seeds and label fractions."""

    students: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="name -> student.params for that size (or {model:, params:} to change "
                                          "the architecture too)")
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    label_fractions: list[float] = Field(default_factory=lambda: [1.0], min_length=1,
                                         description="fractions of training labels kept (data-efficiency curve)")
    within: float = Field(1.0, ge=0, description="'close to the teacher': within this many metric units")

    @field_validator("label_fractions")
    @classmethod
    def _fractions(cls, v):
        if any(not 0 < f <= 1 for f in v):
            raise ValueError("each label fraction must be in (0, 1]")
        return sorted(set(v))


class Config(Section):
    name: str = "run"
    output_dir: str | None = None
    seed: Seed = 0
    checkpoint_every: Epochs = Field(1, ge=0, description="training checkpoint interval in epochs (0: none)")
    task: Literal["classification", "causal-lm", "masked-lm", "embedding"] = Field(
        "classification", description="classification (images, features or, with hf models, text), causal-lm, "
                                      "masked-lm, embedding")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32", description="training precision; bf16 = autocast mixed precision; auto = bf16 where the hardware "
                            "computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else fp32")
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v):
        # The name becomes a folder under artifacts/: nothing that could climb out of it.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", v) or ".." in v:
            raise ValueError("use letters, digits, '.', '_' and '-' only (it names the run folder)")
        return v

    @model_validator(mode="after")
    def _sparse_cache_fits_the_loss(self):
        if self.distill.cache_format != "dense":
            if self.task not in ("causal-lm", "masked-lm"):
                raise ValueError(f"distill.cache_format {self.distill.cache_format}: sparse caches are for "
                                 "language models (token-level KD); use dense")
            if self.distill.divergence != "forward_kl":
                raise ValueError(f"distill.cache_format {self.distill.cache_format}: {self.distill.divergence} "
                                 "needs the teacher's whole distribution; use divergence forward_kl or cache dense")
        return self

    @property
    def text_data(self) -> bool:
        """The data is text: language-model and embedding tasks, and classification by transformers."""
        return self.task != "classification" or self.teacher.model.startswith(TRANSFORMERS)

    @model_validator(mode="after")
    def _sources_fit_the_task(self):
        named = [("data.source", self.data.source, "texts" if self.text_data else "arrays")]
        extra = self.data.extra_texts
        named += [
            (f"data.{k}", s, "texts")
            for k, v in (("extra_texts", extra), ("other_source", self.data.other_source))
            for s in ([v] if isinstance(v, str) else v or [])
        ]
        for where, source, wants in named:
            try:
                parse_source(source, wants, where)
            except DataError as e:
                raise ValueError(str(e)) from None
        return self

    @model_validator(mode="after")
    def _sequence_lengths_fit(self):
        lengths = self.benchmark.sequence_lengths
        if lengths and not self.text_data:
            raise ValueError("benchmark.sequence_lengths: only for text models")
        if lengths and (min(lengths) < 1 or max(lengths) > self.data.sequence_length):
            raise ValueError(f"benchmark.sequence_lengths {lengths}: each must be 1..data.sequence_length "
                             f"({self.data.sequence_length})")
        return self

    @model_validator(mode="after")
    def _label_fraction_needs_labels(self):
        if self.data.label_fraction < 1 and self.task != "classification":
            raise ValueError(f"data.label_fraction: only for classification (task {self.task} learns from the text "
                             "itself, or from the teacher)")
        return self

    @model_validator(mode="after")
    def _freeze_needs_a_transformer(self):
        student_hf = self.student.model.startswith(TRANSFORMERS) or (self.student.model == "derive:teacher"
                                                                     and self.teacher.model.startswith(TRANSFORMERS))
        if self.distill.freeze_embeddings and not student_hf:
            raise ValueError(f"distill.freeze_embeddings: only transformers students (hf:, hf-config:, derive:teacher "
                             f"of one) have a token embedding table; the student is {self.student.model}")
        return self

    @model_validator(mode="after")
    def _quantize_needs_calibration(self):
        if "static" in self.quantize.variants and not self.quantize.calibration:
            raise ValueError("quantize.calibration: static quantization needs at least one calibration method")
        return self

    @property
    def data_seed(self) -> int:
        """The seed of the data split: data.split_seed, else seed."""
        return self.seed if self.data.split_seed is None else self.data.split_seed

    def run_dir(self, base: Path | None = None) -> Path:
        root = Path(base) if base else Path.cwd()
        return (root / (self.output_dir or f"artifacts/{self.name}")).resolve()

"""Text classification with transformers (task: classification with hf:/hf-config: models).

Texts are tokenized and padded to `data.sequence_length`; the labels come from a label column (or
builtin:pydoc-sections). A given teacher keeps its classification head and must know the same labels,
unless `teacher.finetune` trains it on this data first (a new head for these labels). The loss is
the default pipeline's (KD on the class logits at a temperature, mixed with cross-entropy).
"""

from __future__ import annotations

import numpy as np

from kdpipe.data.splits import Split, hide_labels, split_indices
from kdpipe.errors import DataError, ModelError
from kdpipe.metrics import ACCURACY
from kdpipe.tasks.hf_data import TextData, digest, encode, other_and_extra_texts
from kdpipe.tasks.hf_task import HFTask
from kdpipe.training.kd_loss import hard_loss, kd_loss_fn


class TextClassification(HFTask):
    name = "classification"
    card_task = "text-classification"
    optimum_task = "text-classification"
    takes_other_texts = True
    metric = ACCURACY

    def load_data(self, cfg) -> TextData:
        from kdpipe.data.quality import text_notes
        from kdpipe.data.registry import load_labelled_texts
        from kdpipe.progress import warn

        dc = cfg.data
        texts, raw = load_labelled_texts(dc.source, dc.text_column, dc.label_column, dc.drop_unlabelled)
        labels = list(dc.labels) if dc.labels else sorted(set(raw))
        unknown = sorted(set(raw) - set(labels))
        if unknown:
            raise DataError(f"data: labels {unknown[:5]} are not in data.labels {labels}")
        y = np.asarray([labels.index(v) for v in raw], dtype=np.int64)
        rng = np.random.default_rng(cfg.data_seed)
        if dc.limit is not None and dc.limit < len(y):
            keep = np.sort(rng.permutation(len(y))[: dc.limit])
            texts, y = [texts[i] for i in keep], y[keep]
        tok = self.tokenizer(cfg, texts)
        x = encode(tok, texts, dc.sequence_length)
        tr, va, te = split_indices(y, dc.split, cfg.data_seed)
        for note in text_notes(dc.source, texts, [labels[i] for i in y], dc.split, (tr, va, te)):
            warn(note)
        if min(len(tr), len(va), len(te)) == 0:
            raise DataError(f"data: {len(y)} texts are too few to split {tuple(dc.split)}")
        train = hide_labels(Split(x[tr], y[tr]), dc.label_fraction, cfg.data_seed)
        other = None
        o_texts, o_raw, more = other_and_extra_texts(cfg, texts, tr, np.r_[va, te], dc.label_column)
        if o_texts:
            unknown = sorted(set(o_raw) - set(labels))
            if unknown:
                raise DataError(f"data.other_source: labels {unknown[:5]} are not the data's {labels}")
            other = Split(encode(tok, o_texts, dc.sequence_length), np.asarray([labels.index(v) for v in o_raw]))
        if more:  # unlabelled: KD learns from the teacher's output on them, the no-KD baseline never sees them
            from kdpipe.labels import IGNORE

            xe, none = encode(tok, more, dc.sequence_length), np.full(len(more), IGNORE, dtype=np.int64)
            train = Split(np.concatenate([train.x, xe]), np.concatenate([train.y, none]),
                          y_all=np.concatenate([train.y if train.y_all is None else train.y_all, none]))
        return TextData(train, Split(x[va], y[va]), Split(x[te], y[te]), tok, dc.sequence_length,
                        digest(x, y, train.x, *([other.x] if other else [])), labels, other)

    def hf_params(self, cfg, section, data) -> dict:
        params = super().hf_params(cfg, section, data)
        if section.model.startswith("hf-config:") or (section is cfg.teacher and cfg.teacher.finetune):
            # a head for this data's labels (a given teacher's old head is replaced when fine-tuning)
            params.update(num_labels=len(data.labels), id2label=dict(enumerate(data.labels)),
                          label2id={v: i for i, v in enumerate(data.labels)})
            if section.model.startswith("hf:"):
                params["ignore_mismatched_sizes"] = True
        return params

    def check_pair(self, cfg, data, teacher, student) -> None:
        for role, m in (("teacher", teacher), ("student", student)):
            c = m.hf.config
            if c.num_labels != len(data.labels):
                raise ModelError(f"{role}.model: {c.num_labels} labels, but the data has {len(data.labels)} "
                                 f"({', '.join(data.labels)}); set teacher.finetune: true to train a new head")
            names = [c.id2label[i] for i in range(c.num_labels)]
            if not all(n.startswith("LABEL_") for n in names) and names != data.labels:
                raise ModelError(f"{role}.model: its labels {names} are not the data's {data.labels} (same order "
                                 "needed; set data.labels, or teacher.finetune: true)")

    def losses(self, cfg):
        return hard_loss, kd_loss_fn(cfg.distill.temperature, cfg.distill.alpha)

    def bundle_info(self, data) -> dict:
        return {"labels": data.labels, "output": {"name": "logits", "shape": ["batch", len(data.labels)]}}

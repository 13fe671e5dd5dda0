"""Sentence embeddings (task: embedding): a smaller encoder that reproduces the teacher's embeddings.

Embeddings are mean-pooled over real tokens, as sentence-transformers models pool; the student maps
its own width to the teacher's through a learned projection, so it is a drop-in replacement for an
index built with the teacher. The targets are the teacher's embeddings of the texts, computed once
when the data loads (the teacher is given: hf:FOLDER, or built from hf-config: with the run's seed).
Losses: MSE and/or cosine distance to the teacher's embedding. Metrics: mean cosine similarity to the
teacher (x100) and the top-10 neighbour overlap on the held-out texts (how much of a search result
list the student keeps). The teacher's embeddings are kept on disk by content (teacher_outputs), so a
rerun or a stage run alone does not embed every text again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdpipe.data.splits import Split, split_indices
from kdpipe.errors import ConfigError, DataError
from kdpipe.metrics import COSINE
from kdpipe.tasks.hf_data import TextData, digest, encode, other_and_extra_texts, teacher_max_length
from kdpipe.tasks.hf_task import HFTask


class Embedding(HFTask):
    name = "embedding"
    optimum_task = "feature-extraction"
    takes_other_texts = True
    metric = COSINE
    pool = True
    targets_from_teacher = True  # y is the teacher's output: KD needs no teacher pass while training

    def kd_settings(self, dc) -> dict:
        return {"embedding_loss": dc.embedding_loss}

    def load_data(self, cfg) -> TextData:
        from kdpipe.data.registry import load_texts
        from kdpipe.evaluation.scoring import logits
        from kdpipe.training.loop import seed_everything

        dc = cfg.data
        if cfg.teacher.finetune:
            raise ConfigError("teacher.finetune: an embedding teacher is used as given (there are no labels)")
        texts = load_texts(dc.source, dc.text_column)
        rng = np.random.default_rng(cfg.data_seed)
        if dc.limit is not None and dc.limit < len(texts):
            texts = [texts[i] for i in np.sort(rng.permutation(len(texts))[: dc.limit])]
        tok = self.tokenizer(cfg, texts)
        x = encode(tok, texts, dc.sequence_length)
        data = TextData(Split(x, np.zeros(len(x))), None, None, tok, dc.sequence_length, "")
        seed_everything(cfg.seed)  # the distill stage builds the same teacher with the same seed
        teacher, _ = self.build("teacher", cfg, data)
        from kdpipe.evaluation.scoring import torch_predictor
        from kdpipe.tasks.teacher_outputs import cache_dir, cached, model_digest

        key = model_digest(teacher, teacher.hf.config.to_json_string())
        reused = []

        def embed(xs):  # the teacher's embeddings, from the disk cache when this teacher saw these inputs
            y, hit = cached(lambda a: logits(torch_predictor(teacher), a, batch_size=32), xs, key)
            reused.append(len(xs) if hit else 0)
            return y

        y = embed(x)
        tr, va, te = split_indices(np.zeros(len(x), dtype=np.int64), dc.split, cfg.data_seed)
        if min(len(tr), len(va), len(te)) < 2:
            raise DataError(f"data: {len(x)} texts are too few to split {tuple(dc.split)}")
        other = None
        longest = teacher_max_length(cfg, tok, teacher)  # a drop-in takes what the teacher takes
        o_texts, _, more = other_and_extra_texts(cfg, texts, tr, np.r_[va, te])
        if o_texts:  # scored whole, up to the teacher's limit: how a drop-in student meets new text
            xo = encode(tok, o_texts, longest, pad_to_longest=True)
            other = Split(xo, embed(xo))
        train = Split(x[tr], y[tr])
        if more:  # unlabelled by nature: an embedding student learns the teacher's output anyway
            xe = encode(tok, more, dc.sequence_length)
            train = Split(np.concatenate([train.x, xe]), np.concatenate([train.y, embed(xe)]))
        if sum(reused):
            from kdpipe.progress import say

            say(f"teacher embeddings of {sum(reused)} texts read from the cache in {cache_dir()} "
                "(KDPIPE_CACHE=off recomputes them)")
        return TextData(train, Split(x[va], y[va]), Split(x[te], y[te]), tok, dc.sequence_length,
                        digest(x, train.x, *([other.x] if other else [])), None, other, longest)

    def wrap(self, hf, data, teacher=None):
        from kdpipe.models.hf import HFModule

        width = teacher.hf.config.hidden_size if teacher is not None else None
        return HFModule(hf, pool=True, project_to=width)

    def losses(self, cfg):
        kind = cfg.distill.embedding_loss

        def kd(s, t, y):  # y: the teacher's embedding
            target = y if t is None else t
            loss = torch.zeros((), device=s.device)
            if "mse" in kind:
                loss = loss + nn.functional.mse_loss(s.float(), target.float())
            if "cosine" in kind:
                loss = loss + (1 - nn.functional.cosine_similarity(s.float(), target.float(), dim=-1)).mean()
            return loss

        return None, kd  # no labels: no hard loss, no baseline

    def bundle_info(self, data) -> dict:
        return {"output": {"name": "sentence_embedding", "shape": ["batch", int(data.test.y.shape[1])],
                           "pooling": "mean over attention_mask", "normalized": False}}

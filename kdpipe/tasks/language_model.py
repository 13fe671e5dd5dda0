"""Language models: next-token prediction (causal-lm, decoders) and masked LM (masked-lm, encoders).

Text is tokenized (a tokenizer from the teacher's folder, or one trained here on the text), packed
into blocks of `data.sequence_length` tokens and split by block. KD is token-level over the shared
vocabulary. Models and files: hf_task; export and bundle: hf_export.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from kdpipe.data.splits import Split, split_indices
from kdpipe.errors import DataError, ModelError
from kdpipe.metrics import MASKED_ACCURACY, PERPLEXITY
from kdpipe.tasks.hf_data import TextData, digest
from kdpipe.tasks.hf_task import HFTask


class LanguageModel(HFTask):
    kind: str  # causal | masked
    padded = False  # packed blocks: every position is real text
    # The matrix multiplications hold the weights and the time; the attention-mask arithmetic
    # (-inf fills) cannot be calibrated and gains nothing from int8.
    quantize_op_types = ["MatMul", "Gemm"]
    # Token embeddings (Gather) are a large share of a small LM's bytes: int8 in dynamic mode.
    dynamic_extra_ops = ["Gather"]

    def kd_settings(self, dc) -> dict:
        return {"divergence": dc.divergence, "beta": dc.beta}

    # --- data ----------------------------------------------------------------------------
    def load_data(self, cfg) -> TextData:
        from kdpipe.data.registry import load_texts
        from kdpipe.data.text import mask_tokens, pack

        dc = cfg.data
        texts = load_texts(dc.source, dc.text_column)
        tok = self.tokenizer(cfg, texts)
        sep = tok.eos_token_id if self.kind == "causal" else tok.sep_token_id
        blocks = pack(texts, tok, dc.sequence_length, sep)
        rng = np.random.default_rng(cfg.data_seed)
        if dc.limit is not None and dc.limit < len(blocks):
            blocks = blocks[np.sort(rng.permutation(len(blocks))[: dc.limit])]
        if self.kind == "masked":
            x, y = mask_tokens(blocks, tok, dc.mask_prob, rng)
        else:
            x, y = blocks, blocks
        # Blocks have no class: split_indices stratifies on one dummy class, i.e. a seeded shuffle.
        tr, va, te = split_indices(np.zeros(len(blocks), dtype=np.int64), dc.split, cfg.data_seed)
        if min(len(tr), len(va), len(te)) == 0:
            raise DataError(f"data: {len(blocks)} blocks of {dc.sequence_length} tokens are too few to split "
                            f"{tuple(dc.split)}; use more text or a shorter data.sequence_length")
        return TextData(Split(x[tr], y[tr]), Split(x[va], y[va]), Split(x[te], y[te]), tok, dc.sequence_length,
                        digest(blocks))

    # --- models --------------------------------------------------------------------------
    def check_pair(self, cfg, data, teacher, student) -> None:
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

    def check_models(self, data, models: dict) -> None:
        """causal-lm: a model that attends to later tokens sees the one it must predict (BERT without
        is_decoder: bidirectional attention) and learns to copy it. Measured, whatever the
        architecture: change the last token of a block, and no earlier position may notice."""
        if self.kind != "causal":
            return
        import torch

        ids = torch.from_numpy(data.train.x[:1]).clone()
        changed = ids.clone()
        changed[0, -1] = (changed[0, -1] + 1) % len(data.tokenizer)
        for role, model in models.items():
            with torch.inference_mode():
                a, b = model.eval()(ids)[:, :-1], model(changed)[:, :-1]
            if not torch.allclose(a, b, atol=1e-4):
                cfg = model.hf.config
                hint = " (set is_decoder: true in its params for a causal mask)" if hasattr(cfg, "is_decoder") else ""
                raise ModelError(f"{role}.model: a {cfg.model_type} model that attends to later tokens cannot learn "
                                 f"next-token prediction: it sees the token it must predict{hint}")

    def check_outputs(self, data, teacher, shapes) -> None:
        expected = (*data.train.x[:2].shape, teacher.hf.config.vocab_size)
        if shapes["teacher"] != expected:
            raise ModelError(f"teacher.model: logits of shape {shapes['teacher']}, expected {expected}")

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


class CausalLM(LanguageModel):
    name = "causal-lm"
    kind = "causal"
    tokenizer_kind = "causal"
    optimum_task = "text-generation-with-past"  # one graph with a KV cache: an empty past for the prompt
    generates = True
    metric = PERPLEXITY


    def cache_parity(self, session, x):
        from kdpipe.bundle.generate import Generator

        gen = Generator(session)
        if not gen.cached:
            return None
        ids = np.ascontiguousarray(x[:4, :32])
        whole, _ = gen.run(ids)
        steps, past = [], None
        for t in range(ids.shape[1]):
            logits, past = gen.run(ids[:, t : t + 1], past)
            steps.append(logits[:, 0])
        return {"cached_max_abs_diff": float(np.abs(np.stack(steps, 1) - whole).max()),
                "cached_tokens": int(ids.shape[1]), "cached_sequences": int(len(ids))}


class MaskedLM(LanguageModel):
    name = "masked-lm"
    kind = "masked"
    tokenizer_kind = "masked"
    optimum_task = "fill-mask"
    metric = MASKED_ACCURACY

    def bundle_info(self, data) -> dict:
        tok = data.tokenizer  # apps fill this token (kdpipe predict, apps/lib/bundle.mjs fill())
        return {**super().bundle_info(data), "mask_token": tok.mask_token, "mask_token_id": tok.mask_token_id}

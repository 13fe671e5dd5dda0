"""Token-level distillation losses for language models (causal next-token and masked LM).

Divergences between the teacher's distribution p and the student's q at each real position:
- forward KL(p || q): mode-covering, the classic (Hinton; DistilBERT's masked-LM term);
- reverse KL(q || p): mode-seeking (MiniLLM, Gu et al. 2024);
- generalized JSD(beta) = beta * KL(p || m) + (1 - beta) * KL(q || m), m = beta * p + (1 - beta) * q
  (GKD, Agarwal et al. 2024); it tends to forward KL scaled by beta as beta -> 0 and to reverse KL
  scaled by (1 - beta) as beta -> 1.
Positions that are padding (or, for masked LM, not masked) carry label -100 and do not count.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdpipe.labels import IGNORE
from kdpipe.training.teacher_cache import SparseTargets

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


def token_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, divergence: str,
                     beta: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """Per-position divergence, shape (...,), from logits of shape (..., vocab)."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if divergence == "forward_kl":
        return (log_p.exp() * (log_p - log_q)).sum(-1)
    if divergence == "reverse_kl":
        return (log_q.exp() * (log_q - log_p)).sum(-1)
    if divergence == "jsd":
        if not 0.0 < beta < 1.0:
            raise ValueError("jsd needs 0 < beta < 1")
        # log m = log(beta * p + (1 - beta) * q), computed stably in log space
        log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), dim=0)
        kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
        kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
        return beta * kl_pm + (1 - beta) * kl_qm
    raise ValueError(f"unknown divergence {divergence!r} (choose from {', '.join(DIVERGENCES)})")


def sparse_forward_kl(student_logits: torch.Tensor, target: SparseTargets, temperature: float = 1.0) -> torch.Tensor:
    """Per-position sum_k p_k (log p_k - log q(id_k)) over the stored entries (entries of weight 0
    add nothing): forward KL to the stored, sparse teacher distribution."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    p = target.probs.float()
    picked = log_q.gather(-1, target.ids.long())
    return (p * (torch.log(p.clamp(min=1e-30)) - picked)).sum(-1)


def lm_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
               divergence: str = "forward_kl", beta: float = 0.5, temperature: float = 1.0,
               alpha: float = 0.5) -> torch.Tensor:
    """alpha * T^2 * mean divergence + (1 - alpha) * cross-entropy, both over positions whose label is
    not -100. Logits (batch, length, vocab) and labels (batch, length) are already aligned: for causal
    LM the caller passes logits[:, :-1] and labels[:, 1:] (the next token)."""
    real = labels != IGNORE
    n = real.sum().clamp(min=1)
    if isinstance(teacher_logits, SparseTargets):
        if divergence != "forward_kl":
            raise ValueError(f"{divergence} needs the teacher's whole distribution; sparse caches serve forward_kl")
        div = sparse_forward_kl(student_logits, teacher_logits, temperature)
    else:
        div = token_divergence(student_logits, teacher_logits, divergence, beta, temperature)
    soft = (div * real).sum() / n * (temperature**2)
    if alpha >= 1.0:
        return soft
    hard = F.cross_entropy(student_logits.float().reshape(-1, student_logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum") / n
    return alpha * soft + (1 - alpha) * hard


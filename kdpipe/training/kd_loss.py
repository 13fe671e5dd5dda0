"""Knowledge-distillation losses (Hinton et al., 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, labels).

    T^2 keeps the soft term's gradients on the same scale as the hard term's whatever T is.
    """
    t = float(temperature)
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)
    if alpha >= 1.0:
        return soft
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1.0 - alpha) * hard


def hard_loss(student_logits: torch.Tensor, teacher_logits, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(student_logits, labels)


def kd_loss_fn(temperature: float, alpha: float):
    """The loss the training loop calls: (student_logits, teacher_logits, labels) -> loss."""

    def loss(student_logits, teacher_logits, labels):
        return kd_loss(student_logits, teacher_logits, labels, temperature, alpha)

    return loss

"""Knowledge-distillation losses (Hinton et al., 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdpipe.labels import IGNORE


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
    return alpha * soft + (1.0 - alpha) * hard_loss(student_logits, teacher_logits, labels)


def hard_loss(student_logits: torch.Tensor, teacher_logits, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the rows that have a label (IGNORE marks the others); 0 for a batch with none."""
    real = labels != IGNORE
    if not real.any():
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits, labels, ignore_index=IGNORE)


class _FusedKD(torch.autograd.Function):
    """kd_loss in one autograd node: the forward computes the loss and its gradient with respect to
    the student's logits (alpha*T*(q_T - p_T) + (1-alpha)*(q - onehot), over the batch), the backward
    only scales that. Same value and gradient as kd_loss; on small classifiers the two dozen tiny
    autograd-recorded ops of the plain version cost as much as the student's own step."""

    @staticmethod
    def forward(ctx, s, t, labels, temperature, alpha):
        n = s.shape[0]
        log_qt = F.log_softmax(s / temperature, dim=-1)
        log_pt = F.log_softmax(t / temperature, dim=-1)
        pt = log_pt.exp()
        log_q = F.log_softmax(s, dim=-1)
        soft = (pt * (log_pt - log_qt)).sum() * (temperature * temperature / n)
        # the hard term averages over the labelled rows only (IGNORE: no label), as cross_entropy does
        real = (labels != IGNORE)[:, None]
        m = max(int(real.sum()), 1)
        picked = labels.clamp(min=0)[:, None]
        hard = -(log_q.gather(1, picked) * real).sum() / m
        grad = log_qt.exp().sub_(pt).mul_(alpha * temperature / n)
        onehot = torch.zeros_like(log_q).scatter_(1, picked, 1.0)
        grad.add_(log_q.exp().sub_(onehot).mul_(real), alpha=(1.0 - alpha) / m)
        ctx.save_for_backward(grad)
        return alpha * soft + (1.0 - alpha) * hard

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None, None


def kd_loss_fn(temperature: float, alpha: float):
    """The loss the training loop calls: (student_logits, teacher_logits, labels) -> loss."""

    def loss(student_logits, teacher_logits, labels):
        if student_logits.dim() == 2 and student_logits.dtype == torch.float32:
            return _FusedKD.apply(student_logits, teacher_logits.detach(), labels, float(temperature), float(alpha))
        return kd_loss(student_logits, teacher_logits, labels, temperature, alpha)  # e.g. bf16 autocast

    return loss

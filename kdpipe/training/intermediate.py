"""Intermediate-layer matching (TinyBERT / MiniLM style) for transformer students.

Hidden states: MSE between the student's layer (through a learned projection when the widths
differ) and the teacher's mapped layer, over real (non-padding) positions. Attention maps: MSE
between the head-averaged attention probabilities of mapped layers (head counts may differ).
Layer 0 is the embeddings' output, i the output of block i (transformers' hidden_states order);
attention layers count blocks from 1.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from kdpipe.errors import ConfigError, ModelError
from kdpipe.training.loop import TeacherSignal
from kdpipe.training.teacher_cache import WithHidden


def _blocks(module) -> int:
    return module.hf.config.num_hidden_layers


def resolve(mapping, teacher, student, teacher_layers: list[int] | None = None,
            first: int = 0) -> list[tuple[int, int]]:
    """The [student, teacher] pairs; "auto": each student block i onto the teacher block it came from
    (derived students) or onto the evenly spaced teacher block, plus embeddings onto embeddings for
    hidden states."""
    if mapping is None:
        return []
    if mapping != "auto":
        return [tuple(p) for p in mapping]
    s_n, t_n = _blocks(student), _blocks(teacher)
    pairs = [(0, 0)] if first == 0 else []
    for i in range(1, s_n + 1):
        t = teacher_layers[i - 1] + 1 if teacher_layers else round(i * t_n / s_n)
        pairs.append((i, t))
    return pairs


def check_mapping(ic, teacher, student, teacher_layers=None) -> None:
    """Every mapped layer exists; the models expose what is matched (a clear error otherwise)."""
    if not ic.enabled:
        return
    for role, m in (("teacher", teacher), ("student", student)):
        if not hasattr(m, "hf"):
            raise ConfigError(f"distill.intermediate: the {role} is not a transformers model; intermediate matching "
                              "needs hf:/hf-config:/derive:teacher models")
    s_n, t_n = _blocks(student), _blocks(teacher)
    for kind, first in (("hidden", 0), ("attention", 1)):
        for s, t in resolve(getattr(ic, kind), teacher, student, teacher_layers, first):
            if not (first <= s <= s_n and first <= t <= t_n):
                raise ConfigError(f"distill.intermediate.{kind}: pair [{s}, {t}] does not exist; the student has "
                                  f"layers {first}..{s_n}, the teacher {first}..{t_n}")


class Matcher(nn.Module):
    """The projections (trained with the student) and the matching loss."""

    def __init__(self, ic, teacher, student, teacher_layers=None):
        super().__init__()
        self.hidden = resolve(ic.hidden, teacher, student, teacher_layers, 0)
        self.attention = resolve(ic.attention, teacher, student, teacher_layers, 1)
        self.hw, self.aw = ic.hidden_weight, ic.attention_weight
        s_w, t_w = student.hf.config.hidden_size, teacher.hf.config.hidden_size
        self.proj = nn.ModuleList(nn.Linear(s_w, t_w, bias=False) if s_w != t_w else nn.Identity()
                                  for _ in self.hidden)

    def loss(self, student, teacher, cached: torch.Tensor | None = None) -> torch.Tensor:
        """`cached`: the teacher's hidden states at the matched layers for this batch, [batch,
        sequence, pairs, width] (teacher_cache.WithHidden); without it those the teacher kept when
        it ran on the batch."""
        mask = student.mask.unsqueeze(-1).float()  # [batch, seq, 1]
        total = torch.zeros((), device=mask.device)
        if self.hidden:
            if student.hidden is None or (cached is None and teacher.hidden is None):
                raise ModelError("distill.intermediate.hidden: the models returned no hidden states")
            for j, (proj, (s, t)) in enumerate(zip(self.proj, self.hidden)):
                # the teacher ran in inference mode: clone its tensors into ones autograd may save;
                # cached states cover the padded length, the student cut the batch's trailing padding
                target = teacher.hidden[t].float().clone() if cached is None else cached[:, : mask.shape[1], j].float()
                diff = (proj(student.hidden[s].float()) - target) ** 2 * mask
                total = total + self.hw * diff.sum() / (mask.sum() * diff.shape[-1])
        if self.attention:
            if not student.attentions or not teacher.attentions or student.attentions[0] is None:
                raise ModelError("distill.intermediate.attention: the models returned no attention maps "
                                 "(their attention implementation cannot output them)")
            pair = mask * mask.transpose(1, 2)  # real query and key positions
            for s, t in self.attention:
                a_s = student.attentions[s - 1].float().mean(1)
                a_t = teacher.attentions[t - 1].float().clone().mean(1)
                total = total + self.aw * (((a_s - a_t) ** 2) * pair).sum() / pair.sum()
        return total


def with_matching(kd_loss, ic, teacher, student, teacher_layers=None):
    """Make the student and teacher keep their intermediates and add the matching loss to `kd_loss`.
    Returns (loss_fn, matcher); the matcher's projections must be trained with the student."""
    import transformers

    transformers.logging.set_verbosity_error()  # its notes on the attention fallback are not for users
    for m in (teacher, student):
        m.capture, m.capture_attentions = True, bool(ic.attention)
        if ic.attention:
            # fused (sdpa) kernels return no maps; models that cannot switch fall back by themselves
            m.hf.set_attn_implementation("eager")
    matcher = Matcher(ic, teacher, student, teacher_layers)

    def loss(s, t, y):
        if isinstance(t, WithHidden):  # cached outputs and hidden states
            return kd_loss(s, t.out, y) + matcher.loss(student, teacher, t.hidden)
        return kd_loss(s, t, y) + matcher.loss(student, teacher)

    return loss, matcher


def release(*models) -> None:
    """Stop keeping intermediates (inference and export need only the output)."""
    for m in models:
        m.capture = m.capture_attentions = False
        m.hidden = m.attentions = m.mask = None


@dataclass
class KDTraining:
    loss: Callable
    teacher: nn.Module | None  # the teacher to run while training; None: the targets hold its outputs
    matcher: Matcher | None = None  # set when intermediate matching runs

    def signal(self, dc) -> TeacherSignal | None:
        """What the training loop learns from: the teacher, its outputs cached as the distill section
        says, with its hidden states at the matched layers; attention maps need it live."""
        if self.teacher is None:
            return None
        if self.matcher is None:
            return TeacherSignal.of(self.teacher, dc)
        hidden = tuple(t for _, t in self.matcher.hidden)
        return TeacherSignal.of(self.teacher, dc, cache=not self.matcher.attention, hidden=hidden)


@contextlib.contextmanager
def kd_training(kd_loss, ic, teacher, student, teacher_layers=None, targets_from_teacher: bool = False):
    """The loss and the teacher for one KD training of `student` (the distill stage's, the prune
    stage's recovery). With `distill.intermediate` set, the matching loss is added, the teacher's
    hidden states are cached with its outputs (matching attention maps, it runs live), and the
    matcher's projections train and checkpoint with the student; afterwards they are taken off:
    they are not part of the model that ships."""
    live = None if targets_from_teacher else teacher
    if not ic.enabled:
        yield KDTraining(kd_loss, live)
        return
    loss, matcher = with_matching(kd_loss, ic, teacher, student, teacher_layers)
    student.matcher = matcher
    try:
        yield KDTraining(loss, teacher, matcher)
    finally:
        del student.matcher
        release(student, teacher)

"""Intermediate-layer matching: layer maps, projections and the loss."""

import copy

import pytest
import torch

from kdpipe.errors import ConfigError
from kdpipe.models.hf import HFModule, build_hf, derive_student
from kdpipe.pipeline.config import IntermediateConfig
from kdpipe.training.intermediate import Matcher, check_mapping, resolve, with_matching

BERT = {"num_hidden_layers": 4, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
        "vocab_size": 100, "max_position_embeddings": 64}


def _pair(widths=None):
    teacher = HFModule(build_hf("hf-config:bert", BERT, "masked-lm", "teacher.model").eval())
    hf, chosen, _ = derive_student(teacher.hf, "every_other", widths)
    return teacher, HFModule(hf), chosen


def test_auto_map_follows_the_layers_a_derived_student_came_from():
    teacher, student, chosen = _pair()
    assert chosen == [0, 2]
    assert resolve("auto", teacher, student, chosen, 0) == [(0, 0), (1, 1), (2, 3)]
    assert resolve("auto", teacher, student, None, 0) == [(0, 0), (1, 2), (2, 4)]  # evenly spaced
    assert resolve("auto", teacher, student, chosen, 1) == [(1, 1), (2, 3)]


def test_a_mapping_outside_the_models_is_refused():
    teacher, student, _ = _pair()
    with pytest.raises(ConfigError, match=r"pair \[3, 1\] does not exist; the student has layers 0..2"):
        check_mapping(IntermediateConfig(hidden=[[3, 1]]), teacher, student)
    with pytest.raises(ConfigError, match=r"attention: pair \[0, 1\] does not exist; the student has layers 1..2"):
        check_mapping(IntermediateConfig(attention=[[0, 1]]), teacher, student)


def _loss(teacher, student, ic, chosen):
    loss, matcher = with_matching(lambda s, t, y: torch.zeros(()), ic, teacher, student, chosen)
    ids = torch.randint(0, 100, (2, 2, 12))
    ids[:, 1] = 1
    ids[1, 1, 8:] = 0  # padding in the second text
    with torch.inference_mode():
        t = teacher(ids)
    return loss(student(ids), t, None), matcher


def test_loss_is_zero_for_a_copy_of_the_teacher_and_positive_for_a_derived_student():
    teacher, _, _ = _pair()
    ic = IntermediateConfig(hidden="auto", attention="auto")
    same = HFModule(copy.deepcopy(teacher.hf))
    value, _ = _loss(teacher, same, ic, [0, 1, 2, 3])
    assert value.item() == pytest.approx(0.0, abs=1e-10)
    teacher, student, chosen = _pair()
    value, _ = _loss(teacher, student, ic, chosen)
    assert value.item() > 0
    value.backward()  # gradients reach the student (the teacher ran in inference mode)
    assert student.hf.get_input_embeddings().weight.grad is not None


def test_narrower_student_gets_trainable_projections():
    teacher, student, chosen = _pair({"hidden_size": 16, "num_attention_heads": 1, "intermediate_size": 32})
    value, matcher = _loss(teacher, student, IntermediateConfig(hidden="auto"), chosen)
    assert isinstance(matcher, Matcher) and all(p.in_features == 16 and p.out_features == 32 for p in matcher.proj)
    value.backward()
    assert all(p.weight.grad is not None for p in matcher.proj)

"""distill.dropout: set_dropout reaches every place a model keeps a dropout rate."""

import pytest
import torch

from kdpipe.models.builtin import BUILTIN
from kdpipe.models.dropout import set_dropout
from kdpipe.models.hf import build_hf
from tests.models.test_hf import TINY

pytestmark = pytest.mark.fast  # runs no pipeline


@pytest.mark.parametrize("task", sorted(TINY))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_zero_dropout_makes_training_mode_deterministic_and_is_saved(task, attn, tmp_path):
    model_type, params = TINY[task]
    params = {**params, "attn_implementation": attn}
    model = build_hf(f"hf-config:{model_type}", params, task, "student.model").train()
    ids = torch.randint(0, 100, (2, 12))
    torch.manual_seed(0)
    assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)  # the model has dropout
    assert set_dropout(model, 0.0) > 0
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.save_pretrained(tmp_path)
    saved = type(model.config).from_pretrained(tmp_path).to_dict()
    rates = {k: v for k, v in saved.items() if ("dropout" in k or "pdrop" in k) and isinstance(v, float)}
    assert rates and all(v == 0.0 for v in rates.values()), rates


def test_sdpa_attention_rate_that_is_no_nn_dropout_is_set():
    """BERT's SDPA attention passes a float rate to the kernel; nn.Dropout modules alone miss it."""
    model_type, params = TINY["masked-lm"]
    model = build_hf(f"hf-config:{model_type}", {**params, "attn_implementation": "sdpa"}, "masked-lm",
                     "student.model").train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    ids = torch.randint(0, 100, (2, 12))
    assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    set_dropout(model, 0.0)
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_a_derived_student_leaves_its_teacher_alone():
    from kdpipe.models.hf_derive import derive_student

    model_type, params = TINY["masked-lm"]
    teacher = build_hf(f"hf-config:{model_type}", params, "masked-lm", "teacher.model")
    student, _, _ = derive_student(teacher)
    set_dropout(student, 0.0)
    assert teacher.config.hidden_dropout_prob == 0.1 and student.config.hidden_dropout_prob == 0.0
    assert all(m.p == 0.1 for m in teacher.modules() if isinstance(m, torch.nn.Dropout))


def test_builtin_model_and_a_model_without_dropout():
    model = BUILTIN["mlp"]((1, 8, 8), 10, hidden=(16,), dropout=0.5).train()
    x = torch.randn(4, 1, 8, 8)
    assert set_dropout(model, 0.0) == 1
    assert torch.equal(model(x), model(x))
    assert set_dropout(torch.nn.Linear(3, 2), 0.1) == 0

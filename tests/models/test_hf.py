"""Transformers models built from configs (no downloads) and students derived from them."""

import pytest
import torch

from kdpipe.errors import ModelError
from kdpipe.models.hf import build_hf, layer_list
from kdpipe.models.hf_derive import derive_student

pytestmark = pytest.mark.fast  # runs no pipeline

TINY = {
    "causal-lm": ("gpt2", {"n_layer": 4, "n_embd": 32, "n_head": 2, "vocab_size": 100, "n_positions": 64}),
    "masked-lm": ("bert", {"num_hidden_layers": 4, "hidden_size": 32, "num_attention_heads": 2,
                           "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64}),
}


def assert_reloads(student, task, folder):
    """save_pretrained, then from_pretrained gives the same outputs."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    student.save_pretrained(folder)
    auto = AutoModelForCausalLM if task == "causal-lm" else AutoModelForMaskedLM
    again = auto.from_pretrained(folder).eval()
    ids = torch.randint(0, 100, (2, 10))
    assert torch.allclose(again(input_ids=ids).logits, student.eval()(input_ids=ids).logits, atol=1e-6)


@pytest.mark.parametrize("task", sorted(TINY))
def test_derived_student_keeps_every_other_layer_and_reloads(task, tmp_path):
    model_type, params = TINY[task]
    teacher = build_hf(f"hf-config:{model_type}", params, task, "teacher.model").eval()
    student, chosen, _ = derive_student(teacher)
    assert chosen == [0, 2] and student.config.num_hidden_layers == 2
    _, t_layers = layer_list(teacher)
    _, s_layers = layer_list(student)
    for s_i, t_i in enumerate(chosen):
        for (name, a), (_, b) in zip(s_layers[s_i].state_dict().items(), t_layers[t_i].state_dict().items()):
            assert torch.equal(a, b), name
    assert_reloads(student, task, tmp_path)


def test_explicit_layer_choice_and_errors():
    teacher = build_hf("hf-config:gpt2", TINY["causal-lm"][1], "causal-lm", "teacher.model")
    student, chosen, _ = derive_student(teacher, [1, 3])
    assert chosen == [1, 3]
    with pytest.raises(ModelError, match="distinct teacher layer indices in 0..3"):
        derive_student(teacher, [0, 7])
    with pytest.raises(ModelError, match="folder /no/such/folder not found"):
        build_hf("hf:/no/such/folder", {}, "causal-lm", "teacher.model")


@pytest.mark.parametrize("task", sorted(TINY))
@pytest.mark.parametrize("init", ["slice", "fresh"])
def test_narrower_derived_student_slices_or_starts_fresh_and_reloads(task, init, tmp_path):
    model_type, params = TINY[task]
    teacher = build_hf(f"hf-config:{model_type}", params, task, "teacher.model").eval()
    torch.manual_seed(0)
    student, chosen, _ = derive_student(teacher, "every_other",
                                     {"hidden_size": 16, "num_attention_heads": 1, "intermediate_size": 24}, init)
    assert student.config.hidden_size == 16 and student.config.num_hidden_layers == 2
    n = sum(p.numel() for p in student.parameters())
    assert n < sum(p.numel() for p in teacher.parameters()) / 2
    emb = student.get_input_embeddings().weight
    sliced = torch.equal(emb, teacher.get_input_embeddings().weight[:, :16])
    assert sliced == (init == "slice")
    assert_reloads(student, task, tmp_path)


def test_narrower_widths_must_fit_the_heads():
    teacher = build_hf("hf-config:bert", TINY["masked-lm"][1], "masked-lm", "teacher.model")
    with pytest.raises(ModelError, match="not a multiple of num_attention_heads"):
        derive_student(teacher, "every_other", {"hidden_size": 15, "num_attention_heads": 2})


@pytest.mark.parametrize("kind", ["embedding", "classification"])
def test_trailing_padding_is_cut_off_without_changing_the_outputs(kind):
    """HFModule skips the columns no text in the batch uses (pooled and class outputs only), and keeps
    the full width while exporting, so the graph takes any length."""
    import numpy as np
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from kdpipe.models.hf import HFModule

    torch.manual_seed(0)
    c = BertConfig(vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=2,
                   max_position_embeddings=64, num_labels=3)
    hf = (BertModel if kind == "embedding" else BertForSequenceClassification)(c).eval()
    m = HFModule(hf, pool=kind == "embedding").eval()
    x = np.stack([np.random.default_rng(0).integers(1, 100, (4, 40)), np.zeros((4, 40), dtype=np.int64)], axis=1)
    for i, n in enumerate([5, 12, 3, 9]):
        x[i, 1, :n] = 1
    x = torch.as_tensor(x)
    seen = []
    hook = hf.register_forward_pre_hook(lambda mod, args, kw: seen.append(kw["input_ids"].shape[1]), with_kwargs=True)
    with torch.inference_mode():
        cut = m(x)
        m.trim = False
        full = m(x)
    hook.remove()
    assert seen == [12, 40] and torch.allclose(cut, full, atol=1e-5)


def test_a_language_model_keeps_every_position():
    hf = build_hf("hf-config:bert", TINY["masked-lm"][1], "masked-lm", "teacher.model").eval()
    from kdpipe.models.hf import HFModule

    assert not HFModule(hf).trim

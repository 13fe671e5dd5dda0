"""Transformer pruning by activation importance (kdpipe.models.hf_prune), on tiny BERTs built here."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel

from kdpipe.errors import ModelError
from kdpipe.models.hf import HFModule, build_hf
from kdpipe.models.hf_derive import derive_student
from kdpipe.models.hf_prune import apply_plan, leading, make_plan, measure_importance, prune_model, rank_blocks

pytestmark = pytest.mark.fast  # runs no pipeline

CLASSES = [BertModel, BertForMaskedLM, BertForSequenceClassification]


def tiny(cls, seed=0, layers=3):
    torch.manual_seed(seed)
    c = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        num_hidden_layers=layers,
        max_position_embeddings=32,
    )
    return cls(c).eval()


def inputs(n=12, length=10):
    rng = np.random.default_rng(0)
    x = np.stack([rng.integers(1, 100, (n, length)), np.ones((n, length), dtype=np.int64)], axis=1)
    x[: n // 2, 1, length // 2:] = 0  # half the texts padded
    return x


def out(model, x):
    with torch.inference_mode():
        return model(input_ids=torch.as_tensor(x[:, 0]), attention_mask=torch.as_tensor(x[:, 1]))[0]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_plan_that_keeps_everything_reproduces_the_model_exactly(cls):
    m, x = tiny(cls), inputs()
    same = apply_plan(m, make_plan(m, measure_importance(m, x)))
    assert torch.equal(out(m, x), out(same, x))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_pruned_model_has_the_widths_and_reloads_with_from_pretrained(cls, tmp_path):
    m, x = tiny(cls), inputs()
    p, plan, imp = prune_model(m, x, hidden_size=16, intermediate_size=24, layers=2)
    c = p.config
    assert (c.hidden_size, c.num_attention_heads, c.intermediate_size, c.num_hidden_layers) == (16, 2, 24, 2)
    assert plan.layers == sorted(plan.layers) and len(plan.heads[0]) == 2 and len(plan.hidden) == 16
    assert sum(t.numel() for t in p.parameters()) < sum(t.numel() for t in m.parameters()) / 2
    p.save_pretrained(tmp_path)
    again = cls.from_pretrained(tmp_path).eval()
    assert torch.allclose(out(again, x), out(p.eval(), x), atol=1e-6)
    # the kept slices are the teacher's weights
    q = m.get_submodule(_stack(m) + f".{plan.layers[0]}.attention.self.query").weight
    rows = [h * 8 + d for h in plan.heads[0] for d in range(8)]
    assert torch.equal(p.get_submodule(_stack(p) + ".0.attention.self.query").weight, q[rows][:, plan.hidden])


def _stack(model):
    from kdpipe.models.hf import layer_list

    return layer_list(model)[0]


def test_importance_finds_what_does_nothing():
    """A head whose value weights are zero, FFN neurons that never fire and a block that passes its
    input through are the first to go."""
    m, x = tiny(BertModel), inputs()
    stack = _stack(m)
    with torch.no_grad():
        v = m.get_submodule(f"{stack}.1.attention.self.value")
        v.weight[8:16] = 0  # head 1 of block 1
        v.bias[8:16] = 0
        f = m.get_submodule(f"{stack}.0.intermediate.dense")
        f.bias[:5] = -1e4  # GELU(-1e4) = 0: neurons 0..4 of block 0 are dead
        f.weight[:5] = 0
        block = m.get_submodule(f"{stack}.2")
        block.attention.output.dense.weight.zero_()
        block.attention.output.dense.bias.zero_()
        block.output.dense.weight.zero_()
        block.output.dense.bias.zero_()
    imp = measure_importance(m, x, rank_layers=True)
    assert imp.heads[1].argmin() == 1 and imp.heads[1][1] == 0
    assert set(torch.argsort(imp.ffn[0])[:5].tolist()) == {0, 1, 2, 3, 4}
    assert imp.blocks.argmin() == 2  # LayerNorm(x + 0) keeps the direction of x: dropped first
    plan = make_plan(m, imp, hidden_size=24, intermediate_size=59, layers=2)
    assert 1 not in plan.heads[plan.layers.index(1)] and plan.layers == [0, 1]
    assert not {0, 1, 2, 3, 4} & set(plan.ffn[0])


def _closeness(model, kept, x):
    """Mean cosine over real tokens between the last hidden states of `kept` blocks and of all of them."""
    full = out(model.base_model, x)
    fewer = apply_plan(model, make_plan(model, leading(model), layers=kept)).base_model  # full widths: only blocks go
    cos = torch.nn.functional.cosine_similarity(out(fewer, x), full, dim=-1)
    mask = torch.as_tensor(x[:, 1]).float()
    return float((cos * mask).sum() / mask.sum())


@pytest.mark.parametrize("cls", [BertModel, BertForMaskedLM], ids=lambda c: c.__name__)
def test_layer_search_drops_the_block_the_output_misses_least_and_leaves_the_model_whole(cls):
    """Keeping 3 of 4 blocks: the greedy search's first step tries every block, so it must keep the
    triple whose output stays closest to the full model's, measured here through apply_plan."""
    from kdpipe.models.hf import layer_list

    m, x = tiny(cls, seed=3, layers=4), inputs(n=24)
    before = out(m, x)
    scores = rank_blocks(m, x, batch_size=5)
    assert sorted(scores.tolist()) == [0, 1, 2, 3]  # one block dropped a step; the last standing scores 3
    assert torch.equal(out(m, x), before) and len(layer_list(m)[1]) == 4  # the stack is put back
    triples = [[b for b in range(4) if b != d] for d in range(4)]
    best = max(triples, key=lambda kept: _closeness(m, kept, x))
    imp = measure_importance(m, x, rank_layers=True)
    assert make_plan(m, imp, layers=3).layers == best == sorted(torch.argsort(scores)[1:].tolist())


def test_padding_positions_do_not_count():
    m, x = tiny(BertModel), inputs()
    y = x.copy()
    y[:, 0][y[:, 1] == 0] = 7  # other tokens under the padding
    a, b = measure_importance(m, x), measure_importance(m, y)
    assert torch.allclose(a.hidden, b.hidden) and torch.allclose(a.heads, b.heads) and a.tokens == b.tokens
    assert torch.equal(rank_blocks(m, x), rank_blocks(m, y))


def test_bad_widths_and_other_layouts_are_clear_errors():
    m, x = tiny(BertModel), inputs()
    imp = measure_importance(m, x)
    with pytest.raises(ModelError, match="multiple of the head size 8"):
        make_plan(m, imp, hidden_size=20)
    with pytest.raises(ModelError, match="5 attention heads per block; hidden size 32 holds 1..4"):
        make_plan(m, imp, num_heads=5)
    with pytest.raises(ModelError, match="3 attention heads per block; hidden size 16 holds 1..2"):
        make_plan(m, imp, hidden_size=16, num_heads=3)
    with pytest.raises(ModelError, match="cannot keep 4 of 3 layers"):
        make_plan(m, imp, layers=4)
    gpt2 = build_hf("hf-config:gpt2", {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 100, "n_positions": 32},
                    "causal-lm", "teacher.model")
    with pytest.raises(ModelError, match="BERT-family blocks"):
        measure_importance(gpt2, x[:, 0])


def test_derived_student_init_prune_starts_from_the_teachers_most_important_channels():
    teacher, x = tiny(BertModel), inputs()
    student, chosen, channels = derive_student(teacher, 2, {"hidden_size": 16, "num_attention_heads": 2,
                                                            "intermediate_size": 32}, "prune", x)
    assert len(chosen) == 2 and student.config.hidden_size == 16 and len(channels) == 16
    assert torch.equal(
        student.embeddings.word_embeddings.weight, teacher.embeddings.word_embeddings.weight[:, channels]
    )
    with pytest.raises(ModelError, match="4 attention heads per block; hidden size 16 holds 1..2"):
        derive_student(teacher, "every_other", {"hidden_size": 16, "num_attention_heads": 4}, "prune", x)
    # the projection onto the teacher's width starts by putting each channel back where it came from
    module = HFModule(student, pool=True, project_to=32)
    module.start_projection(channels)
    e = torch.randn(3, 16)
    placed = module.proj(e)
    assert torch.equal(placed[:, channels], e) and torch.allclose(placed.abs().sum(), e.abs().sum())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_fewer_heads_keep_the_width_as_pruned_heads_and_reload(cls, tmp_path):
    m, x = tiny(cls), inputs()
    p, plan, imp = prune_model(m, x, intermediate_size=32, num_heads=2)
    c = p.config
    assert (c.hidden_size, c.num_attention_heads, c.intermediate_size) == (32, 4, 32)
    assert c.pruned_heads == {0: [2, 3], 1: [2, 3], 2: [2, 3]} and len(plan.hidden) == 32
    block = p.get_submodule(_stack(p) + ".1")
    assert block.attention.self.num_attention_heads == 2 and block.attention.output.dense.in_features == 16
    q = m.get_submodule(_stack(m) + ".1.attention.self.query").weight
    rows = [h * 8 + d for h in plan.heads[1] for d in range(8)]
    assert torch.equal(block.attention.self.query.weight, q[rows])
    assert plan.heads[1] == sorted(torch.argsort(imp.heads[1], descending=True)[:2].tolist())
    p.save_pretrained(tmp_path)
    again = cls.from_pretrained(tmp_path).eval()
    assert torch.allclose(out(again, x), out(p.eval(), x), atol=1e-6)
    # pruned again: the heads already gone are never picked, the width can go now
    imp2 = measure_importance(p, x)
    assert torch.isinf(imp2.heads[:, 2:]).all() and torch.isfinite(imp2.heads[:, :2]).all()
    q2, plan2, _ = prune_model(p, x, hidden_size=8, intermediate_size=16)
    assert q2.config.hidden_size == 8 and q2.config.num_attention_heads == 1 and not q2.config.pruned_heads
    assert all(h[0] in (0, 1) for h in plan2.heads)


def test_derived_student_with_fewer_heads_keeps_the_teachers_head_size_under_every_init():
    teacher, x = tiny(BertModel), inputs()
    widths = {"num_attention_heads": 2, "intermediate_size": 32}
    built = {init: derive_student(teacher, [0, 2], dict(widths), init, x) for init in ("slice", "prune", "fresh")}
    t_query = teacher.encoder.layer[2].attention.self.query.weight
    for init, (student, chosen, channels) in built.items():
        assert chosen == [0, 2] and student.config.hidden_size == 32 and student.config.pruned_heads == {0: [2, 3],
                                                                                                         1: [2, 3]}
        assert student.encoder.layer[1].attention.self.attention_head_size == 8
    # slice: the leading heads and neurons; prune: the most important; fresh: none of the teacher's
    assert torch.equal(built["slice"][0].encoder.layer[1].attention.self.query.weight, t_query[:16])
    assert built["slice"][2] == list(range(32)) and built["fresh"][2] is None
    assert not torch.equal(built["fresh"][0].encoder.layer[1].attention.self.query.weight, t_query[:16])
    # one head: still the teacher's head size (8), not one head as wide as the model
    one, _, _ = derive_student(teacher, [0], {"num_attention_heads": 1}, "slice", x)
    assert one.config.pruned_heads == {0: [1, 2, 3]} and one.encoder.layer[0].attention.self.query.out_features == 8

"""Intermediate-layer matching: layer maps, projections and the loss."""

import copy

import pytest
import torch

from kdpipe.config.schema import IntermediateConfig
from kdpipe.errors import ConfigError
from kdpipe.models.hf import HFModule, build_hf
from kdpipe.models.hf_derive import derive_student
from kdpipe.training.intermediate import Matcher, check_mapping, resolve, with_matching

pytestmark = pytest.mark.fast  # runs no pipeline

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


def _classifiers():
    """A BERT classifier teacher and a derived student: both cut trailing padding before they run."""
    teacher = HFModule(build_hf("hf-config:bert", {**BERT, "num_labels": 3}, "classification", "teacher.model").eval())
    hf, chosen, _ = derive_student(teacher.hf, "every_other", None)
    return teacher, HFModule(hf), chosen


def _texts(n=10, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 100, (n, 2, length), generator=g)
    ids[:, 1] = 1
    for i in range(n):  # real lengths 3..length: every batch ends in padding somewhere
        ids[i, :, 3 + i % (length - 2):] = 0
    return ids


def test_cached_hidden_states_give_the_loss_the_live_teacher_gives():
    from kdpipe.training.teacher_cache import WithHidden, build

    teacher, student, chosen = _classifiers()
    student.eval()  # no dropout: the two calls below must compute the same
    with torch.no_grad():  # a student that is off the teacher's states: a loss well above rounding
        student.hf.get_input_embeddings().weight.mul_(3.0)
    ic = IntermediateConfig(hidden="auto")
    loss, matcher = with_matching(lambda s, t, y: ((s - t) ** 2).mean(), ic, teacher, student, chosen)
    x = _texts()
    layers = tuple(t for _, t in matcher.hidden)
    cache = build(teacher, x, "dense", hidden=layers, batch_size=4)  # other batches than training's
    assert isinstance(cache, WithHidden) and cache.hidden.shape == (10, 12, len(layers), 32)
    assert cache.hidden.dtype == torch.float16
    batch = torch.tensor([1, 2, 3])  # 4, 5 and 6 tokens: the models cut the rest of the 12
    with torch.inference_mode():
        live_t = teacher(x[batch])
    live = loss(student(x[batch]), live_t, None)
    cached = loss(student(x[batch]), cache[batch], None)
    assert student.mask.shape[1] == 6
    assert live.item() > 1e-2 and cached.item() == pytest.approx(live.item(), rel=1e-3)
    cached.backward()
    assert student.hf.get_input_embeddings().weight.grad is not None


def test_hidden_states_are_cached_unless_attention_maps_are_matched():
    from kdpipe.config.schema import DistillConfig
    from kdpipe.training.intermediate import kd_training

    teacher, student, chosen = _classifiers()
    dc = DistillConfig()
    with kd_training(lambda s, t, y: 0, IntermediateConfig(hidden="auto"), teacher, student, chosen) as kd:
        sig = kd.signal(dc)
        assert sig.cache and sig.hidden == (0, 1, 3)
    with kd_training(lambda s, t, y: 0, IntermediateConfig(hidden="auto", attention="auto"), teacher, student,
                     chosen) as kd:
        assert not kd.signal(dc).cache  # attention maps come from the teacher running live


def _kd_fit(x, y, cache: bool, epochs: int, batch_size: int, **kw):
    """A KD fit of a derived classifier matching the hidden states of every block it kept, with the
    teacher cached or live; returns (result, student, teacher)."""
    from types import SimpleNamespace

    from kdpipe.training.loop import Schedule, TeacherSignal, fit

    train = SimpleNamespace(x=x.numpy(), y=y.numpy())
    teacher, student, chosen = _classifiers()
    loss, matcher = with_matching(lambda s, t, y: ((s - t) ** 2).mean(), IntermediateConfig(hidden="auto"),
                                  teacher, student, chosen)
    student.matcher = matcher
    r = fit(student, train, train, Schedule(epochs=epochs, lr=1e-3, batch_size=batch_size), loss,
            teacher=TeacherSignal(teacher, cache=cache, hidden=(0, 1, 3)), **kw)
    return r, student, teacher


def test_training_on_cached_hidden_states_follows_the_live_teacher(tmp_path):
    """One KD fit with the cache and one with the teacher live end with nearly the same student and
    losses (the cache holds half-precision states); the cache is stored for a resume and reused."""
    from kdpipe.training.loop import batched_logits
    from kdpipe.training.resume import TrainCheckpoint
    from kdpipe.training.teacher_cache import load_or_build

    x = _texts(24, seed=1)
    y = torch.randint(0, 3, (24,))
    runs = {}
    for cache in (False, True):
        torch.manual_seed(0)  # the same models and dropout draws in both
        ckpt = TrainCheckpoint(tmp_path / f"{cache}.pt", "k", every=1)
        runs[cache] = (*_kd_fit(x, y, cache, epochs=2, batch_size=8, checkpoint=ckpt, quiet=True), ckpt)
    live, cached = runs[False][0], runs[True][0]
    assert not live.teacher_cache and cached.teacher_cache["hidden_layers"] == [0, 1, 3]
    assert [h["loss"] for h in cached.history] == pytest.approx([h["loss"] for h in live.history], rel=1e-3)
    # Adam moves weights with tiny gradients by about lr either way, so compare what the students say
    torch.manual_seed(0)
    untrained = batched_logits(_classifiers()[1], x)
    out_live, out_cached = (batched_logits(run[1], x) for run in (runs[False], runs[True]))
    moved, apart = (out_live - untrained).abs().max(), (out_live - out_cached).abs().max()
    assert apart < 0.05 * moved
    _, _, teacher, ckpt = runs[True]
    stored, loaded = load_or_build(ckpt, teacher, x, "dense", 32, 1.0, 0, (0, 1, 3))
    assert loaded and stored.hidden.shape == (24, 12, 3, 32)
    assert not load_or_build(ckpt, teacher, x, "dense", 32, 1.0, 0, (0, 1))[1]  # other layers: built anew


def test_hidden_states_beyond_float16_are_refused_not_cached_as_infinities():
    from kdpipe.errors import ModelError
    from kdpipe.training.teacher_cache import build

    teacher, _, _ = _classifiers()
    with torch.no_grad():
        teacher.hf.bert.embeddings.LayerNorm.weight.fill_(1e6)  # layer 0's states reach about 1e6
    teacher.capture = True
    with pytest.raises(ModelError, match="exceed float16's range.*distill.cache_teacher: false"):
        build(teacher, _texts(), hidden=(0,))


def test_hidden_states_over_the_cache_budget_run_the_teacher_live(monkeypatch, capsys):
    from kdpipe.training import loop

    monkeypatch.setattr(loop, "CACHE_BUDGET", 1024)  # bytes: these 8 texts' states need 8 x 12 x 3 x 32 x 2
    monkeypatch.setattr("kdpipe.progress._quiet", False)  # an earlier `-q` run in this process may have set it
    r, _, _ = _kd_fit(_texts(8), torch.zeros(8, dtype=torch.long), True, epochs=1, batch_size=4, desc="kd")
    assert not r.teacher_cache and r.history[0]["loss"] > 0
    assert "[kd] teacher outputs and hidden states for the training split need" in capsys.readouterr().err

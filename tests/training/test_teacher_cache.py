"""Teacher-output caches: dense, top-k and sampled (unbiased) sparse forms."""

import pytest
import torch

from kdpipe.training.lm_losses import lm_kd_loss, sparse_forward_kl, token_divergence
from kdpipe.training.teacher_cache import build, bytes_per_item, sparsify

pytestmark = pytest.mark.fast  # runs no pipeline


def test_topk_keeps_the_largest_probabilities_renormalised():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    t = sparsify(logits, "topk", 2, 1.0, torch.Generator())
    assert t.ids.tolist() == [[1, 3]]
    p = torch.softmax(logits, -1)[0]
    assert t.probs.float()[0].tolist() == pytest.approx(
        [float(p[1] / (p[1] + p[3])), float(p[3] / (p[1] + p[3]))], abs=1e-3
    )


def test_sampled_targets_are_an_unbiased_estimate_of_the_distribution():
    torch.manual_seed(0)
    logits = torch.randn(1, 50)
    p = torch.softmax(logits / 2.0, -1)[0]
    gen = torch.Generator().manual_seed(1)
    est = torch.zeros(50)
    rounds = 4000
    for _ in range(rounds):
        t = sparsify(logits, "sampled", 8, 2.0, gen)
        assert t.probs.float().sum().item() == pytest.approx(1.0, abs=1e-3)
        est.index_add_(0, t.ids[0].long(), t.probs[0].float())
    est /= rounds
    assert torch.allclose(est, p, atol=0.01)  # top-k would put 0 on the tail and too much on the head


def test_sparse_kl_with_every_token_equals_the_dense_kl():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 30), torch.randn(2, 5, 30)
    full = sparsify(t, "topk", 30, 2.0, torch.Generator())
    assert torch.allclose(sparse_forward_kl(s, full, 2.0), token_divergence(s, t, "forward_kl", temperature=2.0),
                          atol=1e-3)
    labels = torch.randint(0, 30, (2, 5))
    assert lm_kd_loss(s, full, labels, temperature=2.0).item() == pytest.approx(
        lm_kd_loss(s, t, labels, temperature=2.0).item(), abs=1e-3)
    with pytest.raises(ValueError, match="sparse caches serve forward_kl"):
        lm_kd_loss(s, full, labels, divergence="jsd")


def test_storage_per_token_and_batched_build():
    teacher = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Linear(8, 100))
    x = torch.randint(0, 100, (10, 6))
    assert bytes_per_item(teacher, x, "dense", 16) == 6 * 100 * 4
    assert bytes_per_item(teacher, x, "topk", 16) == 6 * 16 * 6
    cache = build(teacher, x, "sampled", 16, 1.0, seed=0, batch_size=3)
    assert cache.ids.shape == (10, 6, 16) and cache.nbytes == 10 * 6 * 16 * 6
    again = build(teacher, x, "sampled", 16, 1.0, seed=0, batch_size=3)
    assert torch.equal(cache.ids, again.ids)  # seeded: a resumed run draws the same tokens


def test_cache_is_stored_beside_the_checkpoint_and_reused(tmp_path):
    from kdpipe.training.resume import TrainCheckpoint
    from kdpipe.training.teacher_cache import load_or_build

    teacher = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Linear(8, 100))
    x = torch.randint(0, 100, (10, 6))
    ckpt = TrainCheckpoint(tmp_path / "student.pt", "key-1")
    first, loaded = load_or_build(ckpt, teacher, x, "topk", 4, 1.0, 0)
    assert not loaded and (tmp_path / "student.teacher-cache.pt").is_file()
    with torch.no_grad():
        teacher[1].weight.add_(1.0)  # were the teacher run again, the cache would differ
    again, loaded = load_or_build(ckpt, teacher, x, "topk", 4, 1.0, 0)
    assert loaded and torch.equal(again.ids, first.ids)
    _, loaded = load_or_build(TrainCheckpoint(tmp_path / "student.pt", "key-2"), teacher, x, "topk", 4, 1.0, 0)
    assert not loaded  # another run's cache is never used


def test_padded_texts_are_cached_shortest_first_each_row_in_its_place():
    """The cache pass runs padded texts shortest first (the model cuts the padding a batch does not
    use) and puts every output and hidden state back in its text's row."""
    from kdpipe.models.hf import HFModule, build_hf
    from kdpipe.training.loop import batched_logits

    config = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
              "vocab_size": 100, "max_position_embeddings": 64, "num_labels": 3}
    teacher = HFModule(build_hf("hf-config:bert", config, "classification", "teacher.model").eval())
    teacher.capture = True
    x = torch.randint(2, 100, (9, 2, 12), generator=torch.Generator().manual_seed(0))
    x[:, 1] = 1
    lengths = [12, 3, 7, 5, 12, 4, 9, 3, 6]
    for i, n in enumerate(lengths):
        x[i, :, n:] = 0
    seen, forward = [], teacher.forward
    teacher.forward = lambda b: seen.extend(b[:, 1].sum(-1).tolist()) or forward(b)
    cache = build(teacher, x, "dense", hidden=(0, 2), batch_size=4)
    assert seen == sorted(lengths)
    with torch.inference_mode():
        for i, n in enumerate(lengths):  # each text alone: no padding at all
            alone = teacher(x[i : i + 1, :, :n])
            assert torch.allclose(cache.out[i], alone[0], atol=1e-5)
            states = torch.stack([teacher.hidden[j][0] for j in (0, 2)], dim=1)
            assert torch.allclose(cache.hidden[i, :n].float(), states, atol=1e-2)
        assert torch.allclose(batched_logits(teacher, x, batch_size=4), cache.out, atol=1e-5)

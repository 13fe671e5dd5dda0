import numpy as np
import pytest
from PIL import Image

from kdpipe.config.schema import DataConfig
from kdpipe.data.registry import load_arrays as load_source
from kdpipe.data.splits import apply_preprocessing, make_splits, split_indices
from kdpipe.errors import DataError

pytestmark = pytest.mark.fast  # runs no pipeline


def _cfg(source, **kw):
    return DataConfig(source=source, **kw)


def test_builtin_sets_load_real_data():
    mnist = load_source(_cfg("builtin:mnist-5k"))
    assert mnist.x.shape == (5000, 1, 28, 28) and sorted(set(mnist.y.tolist())) == list(range(10))
    digits = load_source(_cfg("builtin:digits"))
    assert digits.x.shape == (1797, 1, 8, 8)


def test_digits_read_from_the_file_equal_scikit_learns_loader():
    from sklearn.datasets import load_digits

    digits, d = load_source(_cfg("builtin:digits")), load_digits()
    assert np.array_equal(digits.x[:, 0], d.images) and np.array_equal(digits.y, d.target)
    assert digits.x.dtype == np.float32 and digits.y.dtype == np.int64


def test_splits_are_shuffled_stratified_seeded_and_disjoint():
    y = np.repeat(np.arange(4), 50)  # sorted by class, like mnist_5k.csv.gz
    a = split_indices(y, (0.7, 0.1, 0.2), seed=1)
    b = split_indices(y, (0.7, 0.1, 0.2), seed=1)
    assert all((p == q).all() for p, q in zip(a, b))
    tr, va, te = a
    assert len(set(tr) | set(va) | set(te)) == 200 and len(tr) + len(va) + len(te) == 200
    assert sorted(np.bincount(y[te]).tolist()) == [10, 10, 10, 10]  # every class in the test split
    assert not (np.diff(tr) > 0).all()  # shuffled, not the file's order
    assert not (split_indices(y, (0.7, 0.1, 0.2), seed=2)[2] == te).all()


def test_preprocessing_uses_training_statistics():
    raw = load_source(_cfg("builtin:digits"))
    s = make_splits(raw, (0.7, 0.1, 0.2), seed=0)
    assert abs(float(s.train.x.mean())) < 1e-4 and abs(float(s.train.x.std()) - 1) < 1e-3
    assert np.allclose(apply_preprocessing(raw.x[:3], s.preprocessing),
                       (raw.x[:3] * s.preprocessing["scale"] - s.preprocessing["mean"]) / s.preprocessing["std"])


def test_npz_csv_and_folder_sources(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((30, 5)).astype(np.float32), y=np.arange(30) % 3)
    d = load_source(_cfg(f"npz:{tmp_path / 'd.npz'}"))
    assert d.x.shape == (30, 5) and d.labels == ["0", "1", "2"]

    (tmp_path / "d.csv").write_text(
        "a,b,label\n" + "".join(f"{i},{i * 2},{'cat' if i % 2 else 'dog'}\n" for i in range(20))
    )
    c = load_source(_cfg(f"csv:{tmp_path / 'd.csv'}"))
    assert c.x.shape == (20, 2) and c.labels == ["cat", "dog"] and c.y[1] == 0

    for cls in ("circle", "square"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (10, 12), dtype=np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    f = load_source(_cfg(f"folder:{tmp_path / 'img'}"))
    assert f.x.shape == (12, 1, 10, 12) and f.labels == ["circle", "square"]


@pytest.mark.parametrize(
    "make, kw, message",
    [
        (lambda p: None, {}, "not found"),
        (lambda p: np.savez(p, x=np.zeros((20, 3)), y=np.zeros(19)), {}, "20 inputs but 19 labels"),
        (lambda p: np.savez(p, x=np.full((20, 3), np.nan), y=np.zeros(20)), {}, "NaN"),
        (lambda p: np.savez(p, x=np.zeros((20, 3)), y=np.arange(20)), {"labels": ["a", "b"]}, "out of range 0..1"),
        (lambda p: np.savez(p, x=np.zeros((20, 3)), y=np.full(20, 0.5)), {}, "whole numbers"),
        (lambda p: np.savez(p, a=np.zeros(3)), {}, "needs arrays 'x' and 'y'"),
        (lambda p: p.write_bytes(b"not a zip"), {}, "not an .npz file"),
    ],
)
def test_bad_data_is_one_clear_error_naming_the_file(tmp_path, make, kw, message):
    p = tmp_path / "bad.npz"
    make(p)
    with pytest.raises(DataError, match=message) as e:
        load_source(_cfg(f"npz:{p}", **kw))
    assert "bad.npz" in str(e.value) or "npz:" in str(e.value)


def test_unknown_source_scheme():
    with pytest.raises(DataError, match="expected builtin:NAME"):
        load_source(_cfg("http://example.com/data"))


def test_a_feature_csv_with_empty_labels_is_refused_naming_them_or_left_out(tmp_path, capsys):
    rows = ["a,b,label"] + [f"{i},{i + 1},{'xy'[i % 2]}" for i in range(12)]
    rows[3] = rows[3].rsplit(",", 1)[0] + ","  # rows 4 and 7 of the file: no label
    rows[6] = rows[6].rsplit(",", 1)[0] + ","
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"2 of 12 rows have no 'label' \(rows 4, 7\); fill them in, or set "
                                         r"data.drop_unlabelled: true"):
        load_source(DataConfig(source=f"csv:{tmp_path / 't.csv'}"))
    data = load_source(DataConfig(source=f"csv:{tmp_path / 't.csv'}", drop_unlabelled=True))
    assert data.labels == ["x", "y"] and len(data.x) == 10 and [2, 3] not in data.x.tolist()
    assert "left out (data.drop_unlabelled)" in capsys.readouterr().err

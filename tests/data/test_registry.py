"""One table of data sources: the config validator, the run's input digests and the loaders read it."""

import numpy as np
import pytest

from kdpipe.config.load import load_config
from kdpipe.data.registry import SCHEMES, load_arrays, load_texts, local_path, parse
from kdpipe.errors import ConfigError, DataError
from kdpipe.pipeline.runner import input_digests


def _config(tmp_path, body):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\n" + body)
    return p


@pytest.mark.parametrize("body, expected", [
    ("data: {source: 'parquet:x.pq'}", "data.source 'parquet:x.pq': expected builtin:NAME, npz:PATH, csv:PATH, "
                                       "folder:PATH"),
    ("task: causal-lm\ndata: {source: 'folder:imgs'}", "data.source 'folder:imgs': expected builtin:NAME, csv:PATH, "
     "text:PATH, jsonl:PATH, hf-disk:PATH, hf-hub:NAME (the sources of text data)"),
    ("task: classification\ndata: {source: 'jsonl:a.jsonl'}", "(the sources of array data)"),
    ("task: embedding\ndata: {source: 'builtin:pydoc-sentences', extra_texts: ['builtin:pydoc-topics', 'npz:a.npz']}",
     "data.extra_texts 'npz:a.npz'"),
])
def test_the_config_refuses_a_source_the_task_cannot_read(tmp_path, body, expected):
    with pytest.raises(ConfigError) as e:
        load_config(_config(tmp_path, body))
    assert expected in str(e.value)


def test_every_local_scheme_is_part_of_the_fingerprint(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,label\n1,0\n")
    for name, scheme in SCHEMES.items():
        assert (local_path(f"{name}:{f}") == f) == scheme.local
    cfg = load_config(_config(tmp_path, f"data: {{source: 'csv:{f}'}}"))
    before = input_digests(cfg, ("data",))["data"]
    f.write_text("a,label\n2,0\n")
    assert input_digests(cfg, ("data",))["data"] != before


def test_loaders_by_scheme(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((12, 3), np.float32), y=np.arange(12) % 2)
    cfg = load_config(_config(tmp_path, f"data: {{source: 'npz:{tmp_path / 'a.npz'}'}}")).data
    assert load_arrays(cfg).x.shape == (12, 3)
    (tmp_path / "t.txt").write_text("one line\n")
    assert load_texts(f"text:{tmp_path / 't.txt'}") == ["one line\n"]
    with pytest.raises(DataError, match="the sources of text data"):
        load_texts(f"npz:{tmp_path / 'a.npz'}")
    assert parse("builtin:digits", "arrays")[0] == "builtin"

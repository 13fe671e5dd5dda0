"""One naming function for variants: what the quantize stage makes is what export.bundle may name."""

import json

import pytest

from kdpipe.variants import QUANTIZED_TEACHER, variant_name


def test_variant_names():
    assert variant_name("student", "dynamic") == "student-int8-dynamic"
    assert variant_name("pruned", "static", "minmax", mixed=True) == "pruned-int8-static-minmax-mixed"
    assert variant_name("student", "dynamic-fused") == "student-int8-dynamic-fused"
    assert variant_name("student", "fp32-fused") == "student-fp32-fused"
    assert variant_name("student", "fp16") == "student-fp16"
    assert variant_name("student", "int4") == "student-int4"
    with pytest.raises(ValueError, match="no variant kind 'int2'"):
        variant_name("student", "int2")


def test_every_variant_a_run_made_is_a_name_export_bundle_accepts(tiny_run):
    from kdpipe.config.load import load_config
    from kdpipe.stages.export import possible_bundles

    manifest = json.loads((tiny_run / "manifest.json").read_text())
    made = [r["variant"] for r in manifest["stages"]["quantize"]["outputs"]["variants"]]
    assert QUANTIZED_TEACHER in made and len(made) > 3
    cfg = load_config(tiny_run.parent / "config.yaml")
    assert set(made) <= set(possible_bundles(cfg))
    # what pruning leaves unquantized is not offered: the quantize stage takes the pruned student
    assert "student-int8-dynamic" not in possible_bundles(cfg) and "student-fp32" in possible_bundles(cfg)

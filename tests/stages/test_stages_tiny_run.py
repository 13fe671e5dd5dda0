"""What each stage left in the shared tiny run: files, rows, and the quality checks they report."""

import json

import onnx
import pytest

from kdpipe.run.store import RunStore
from kdpipe.stages import ORDER
from tests.conftest import int8_weight_max


@pytest.fixture(scope="module")
def manifest(tiny_run):
    return json.loads((tiny_run / "manifest.json").read_text())


def _rows(manifest, stage):
    return {r["variant"]: r for r in manifest["stages"][stage]["outputs"]["variants"]}


def test_every_stage_is_recorded_with_checksums_and_versions(tiny_run, manifest):
    assert list(manifest["stages"]) == ORDER
    for name, entry in manifest["stages"].items():
        assert entry["files"] and entry["versions"]["torch"] and entry["fingerprint"]
        assert RunStore(tiny_run).problems(name) == []
    assert not (tiny_run / ".staging" / "distill").exists()


def test_every_variant_row_is_a_variant_row(manifest):
    """The rows every stage records hold VariantRow's keys: the required ones always, no others."""
    from kdpipe.variants import VariantRow

    rows = [r for e in manifest["stages"].values() for r in (e["outputs"].get("variants") or [])]
    assert len(rows) > 8
    for r in rows:
        assert VariantRow.__required_keys__ <= set(r) <= VariantRow.__required_keys__ | VariantRow.__optional_keys__, r
        assert r["format"] in ("torch", "onnx-fp32", "onnx-int8", "onnx-fp16")


def test_variant_row_refuses_a_key_the_type_does_not_name(tmp_path):
    from kdpipe.variants import variant_row

    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(TypeError, match="latency not a key of VariantRow"):
        variant_row("s", "onnx-fp32", tmp_path / "m.onnx", "m.onnx", 1, {"val": 1}, "export", latency=2)


def test_distill_trains_teacher_student_and_baseline(manifest):
    rows = _rows(manifest, "distill")
    assert set(rows) == {"teacher", "baseline", "student"}
    assert rows["student"]["params"] == rows["baseline"]["params"] < rows["teacher"]["params"]
    out = manifest["stages"]["distill"]["outputs"]
    assert out["split_sizes"]["test"] > 0 and len(out["labels"]) == 10


def test_prune_really_removes_parameters_and_records_recovery(manifest):
    out = manifest["stages"]["prune"]["outputs"]
    assert out["params_after"] < out["params_before"]
    assert set(out["accuracy_before_recovery"]) == {"val", "test"}


def test_quantize_variants_are_smaller_and_measured_in_onnxruntime(tiny_run, manifest):
    rows = _rows(manifest, "quantize")
    distilled = _rows(manifest, "distill")
    kd_did_not_pay = distilled["baseline"]["metric"]["val"] > distilled["student"]["metric"]["val"]
    assert set(rows) == {
        "pruned-int8-dynamic",
        "pruned-int8-static-minmax",
        "pruned-int8-static-entropy",
        "pruned-fp16",
        "teacher-int8-dynamic",
    } | ({"baseline-int8-dynamic"} if kd_did_not_pay else set())
    rows.pop("baseline-int8-dynamic", None)  # (a candidate like the others: tests/stages/test_export_budget.py)
    # the no-distillation bar: the teacher itself in int8, the least damaged of plain and per-channel
    # on validation, in the students' 7-bit weights
    qt = rows.pop("teacher-int8-dynamic")
    assert qt["source"] == "teacher" and qt["quantization"]["no_distillation"]
    cands = qt["quantization"]["candidates"]
    assert set(cands) == {"plain", "per-channel"} and qt["quantization"]["reduce_range"] is True
    assert qt["vs_source"]["damage_val"] == min(c["damage_val"] for c in cands.values())
    assert qt["size_bytes"] < _rows(manifest, "export")["teacher"]["size_bytes"]
    assert sorted(p.name for p in (tiny_run / "quantize").glob("teacher-*")) == ["teacher-int8-dynamic.onnx"]
    # the students' int8 weights are 7-bit by default (quantize.reduce_range: true): no x86 kernel saturates
    for r in (rows["pruned-int8-dynamic"], rows["pruned-int8-static-minmax"], qt):
        assert r["quantization"]["reduce_range"] is True, r["variant"]
        assert int8_weight_max(tiny_run / r["path"]) <= 64, r["variant"]
    fp32 = _rows(manifest, "export")["pruned"]["size_bytes"]
    for name, r in rows.items():
        source = _rows(manifest, "export")[r["source"]]["metric"]["test"]
        # smaller than the fp32 file, and within 5 points of its fp32 source (all four equal it when measured)
        assert r["size_bytes"] < fp32 and abs(r["metric"]["test"] - source) <= 5, name
        onnx.checker.check_model(str(tiny_run / r["path"]))
    assert rows["pruned-int8-static-minmax"]["quantization"]["ops"].get("QuantizeLinear")
    # fp16 keeps fp32 inputs/outputs and, run on the CPU provider here, the fp32 model's accuracy
    fp32_acc = _rows(manifest, "export")["pruned"]["metric"]["test"]
    assert abs(rows["pruned-fp16"]["metric"]["test"] - fp32_acc) <= 1.0


def test_export_parity_and_dynamic_batch(tiny_run, manifest):
    out = manifest["stages"]["export"]["outputs"]
    torch_rows = {**_rows(manifest, "distill"), **_rows(manifest, "prune")}
    for name, p in out["parity"].items():
        assert p["max_abs_diff"] < 1e-4 and p["agreement"] == 100.0
        onnx_row = _rows(manifest, "export")[name]
        assert abs(onnx_row["metric"]["test"] - torch_rows[name]["metric"]["test"]) <= 0.1
    model = onnx.load(str(tiny_run / "export" / "student.onnx"))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    bundle = json.loads((tiny_run / "export" / "bundle" / "kdpipe.json").read_text())
    assert bundle["variant"] == out["bundle"]["variant"] and bundle["input"]["shape"] == ["batch", 1, 8, 8]


def test_benchmark_measures_cpu_and_reports_cuda_honestly(manifest):
    out = manifest["stages"]["benchmark"]["outputs"]
    cpu = [r for r in out["results"] if r["provider"] == "cpu" and r["runtime"] == "onnxruntime"]
    assert cpu and all(set(r["batches"]) == {"1", "8"} for r in cpu)
    assert all(r["batches"]["1"]["p50_ms"] > 0 for r in cpu)
    assert any(r["runtime"] == "torch-eager" and r["available"] for r in out["results"])
    assert all(r["placement"]["nodes_by_provider"] == {"CPU": sum(r["placement"]["ops_by_provider"]["CPU"].values())}
               for r in cpu)
    cuda = [r for r in out["results"] if r["provider"] == "cuda"]
    if not out["providers"]["cuda"]["available"]:
        assert cuda and all(not r["available"] and "batches" not in r for r in cuda)

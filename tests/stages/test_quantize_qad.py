"""quantize.variants qad-int8 / qad-int4 (and quantize.qad.teacher): each QAD copy is a row like the
others, in the integer ops the post-training copy uses, its exported graph gives the answers of the
fake-quantized PyTorch model it was trained as, and the report sets it beside the post-training copy
of the same source in the same bits. Its settings rerun quantize and nothing before it."""

import json
import shutil

import onnx

from tests.conftest import run_cli


def _rows(run):
    m = json.loads((run / "manifest.json").read_text())
    return {r["variant"]: r for r in m["stages"]["quantize"]["outputs"]["variants"]}, m


def test_qad_variants_are_measured_rows_that_agree_with_what_was_trained(tiny_run, tmp_path):
    shutil.copytree(tiny_run.parent, tmp_path / "copy")
    cfg = tmp_path / "copy" / "config.yaml"
    cfg.write_text(cfg.read_text().replace(str(tiny_run), str(tmp_path / "copy" / "run")))
    run = tmp_path / "copy" / "run"
    before = json.loads((run / "manifest.json").read_text())["stages"]
    assert run_cli("all", str(cfg), "-q", "--set", "quantize.variants=[dynamic,int4,qad-int8,qad-int4]",
                   "--set", "quantize.qad.teacher=true", "--set", "quantize.qad.epochs=2") == 0
    rows, manifest = _rows(run)
    for stage in ("distill", "prune"):  # QAD settings are quantize's inputs: nothing before it reran
        assert manifest["stages"][stage]["run_id"] == before[stage]["run_id"]
    for name, op in (("pruned-int8-qad", "MatMulInteger"), ("pruned-int4-qad", "MatMulNBits"),
                     ("teacher-int8-qad", "MatMulInteger"), ("teacher-int4-qad", "MatMulNBits")):
        r = rows[name]
        qad = r["quantization"]["qad"]
        assert r["source"] == name.split("-")[0] and r["quantization"]["ops"].get(op), name
        assert qad["epochs"] == 2 and len(qad["history"]) == 2 and qad["layers_emulated"] >= 2
        assert qad["export_agreement_val"] >= 99.5, (name, qad["export_agreement_val"])
        assert r["vs_source"]["agreement_val"] is not None and r["evidence"]
        onnx.checker.check_model(str(run / r["path"]))
    report = json.loads((run / "report" / "report.json").read_text())
    pairs = {e["qad"]["variant"]: (e["ptq"] or {}).get("variant") for e in report["qad"]}
    assert pairs == {"pruned-int8-qad": "pruned-int8-dynamic", "pruned-int4-qad": "pruned-int4",
                     "teacher-int8-qad": "teacher-int8-dynamic", "teacher-int4-qad": None}
    assert any(s["stage"] == "quantize (QAD)" for s in report["stages"])
    findings = [line.removeprefix("- ") for line in (run / "report" / "report.md").read_text().splitlines()]
    assert any(line.startswith("Quantization-aware distillation") and "pruned-int8-qad against pruned-int8-dynamic"
               in line for line in findings)
    # a QAD bundle's model card says how it was made
    assert run_cli("all", str(cfg), "-q", "--set", "quantize.variants=[dynamic,int4,qad-int8,qad-int4]",
                   "--set", "quantize.qad.teacher=true", "--set", "quantize.qad.epochs=2",
                   "--set", "export.bundle=teacher-int8-qad") == 0
    card = (run / "export" / "bundle" / "README.md").read_text()
    assert "trained against its own fp32 outputs (quantization-aware distillation)" in card
    assert "Quantization-aware distillation: 2 epochs" in card and "quantized: no distillation" not in card

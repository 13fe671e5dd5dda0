"""quantize.reduce_range: auto makes dynamic int8 with 7- and 8-bit weights (and, with per_channel
auto, plain and per-channel) and keeps the best on validation; the default ships 7-bit weights."""

import json
import shutil

from tests.conftest import int8_weight_max, run_cli


def test_auto_weight_bits_keep_the_best_on_validation(tiny_run, tmp_path):
    shutil.copytree(tiny_run.parent, tmp_path / "copy")
    cfg = tmp_path / "copy" / "config.yaml"
    cfg.write_text(cfg.read_text().replace(str(tiny_run), str(tmp_path / "copy" / "run")))
    assert run_cli("quantize", str(cfg), "-q", "--set", "quantize.reduce_range=auto", "--set",
                   "quantize.variants=[dynamic]", "--set", "quantize.search=false") == 0
    run = tmp_path / "copy" / "run"
    rows = {r["variant"]: r for r in json.loads((run / "manifest.json").read_text())["stages"]["quantize"]["outputs"]
            ["variants"]}
    row = rows["pruned-int8-dynamic"]
    vals = row["quantization"]["candidates_val"]
    assert set(vals) == {"plain, 7-bit", "plain, 8-bit", "per-channel, 7-bit", "per-channel, 8-bit"}
    best = max(vals.values())
    # ties go to plain weights, then to 7 bits
    first = next(k for k in ("plain, 7-bit", "plain, 8-bit", "per-channel, 7-bit", "per-channel, 8-bit")
                 if vals[k] == best)
    assert row["metric"]["val"] == best
    assert (row["quantization"]["per_channel"], row["quantization"]["reduce_range"]) == (
        first.startswith("per-channel"), first.endswith("7-bit"))
    assert (int8_weight_max(run / row["path"]) <= 64) == row["quantization"]["reduce_range"]
    # the bar follows the students' weight bits setting: here auto as well
    assert set(rows["teacher-int8-dynamic"]["quantization"]["candidates_val"]) == set(vals)
    assert sorted(p.name for p in (run / "quantize").glob("*int8-dynamic*.onnx")) == [
        "pruned-int8-dynamic.onnx", "teacher-int8-dynamic.onnx"]

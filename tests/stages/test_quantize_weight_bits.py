"""quantize.reduce_range: auto makes dynamic int8 with 7- and 8-bit weights (and, with per_channel
auto, plain and per-channel) and keeps the least damaged against its fp32 source on validation; the
default ships 7-bit weights. The choice itself, in miniature: a copy that changes many answers with a
net of zero loses to one that changes few."""

import json
import shutil

import numpy as np

from kdpipe.evaluation.evidence import Samples, versus
from kdpipe.stages.quantize import least_damaged
from tests.conftest import int8_weight_max, run_cli


def test_auto_weight_bits_keep_the_least_damaged(tiny_run, tmp_path):
    shutil.copytree(tiny_run.parent, tmp_path / "copy")
    cfg = tmp_path / "copy" / "config.yaml"
    cfg.write_text(cfg.read_text().replace(str(tiny_run), str(tmp_path / "copy" / "run")))
    assert run_cli("quantize", str(cfg), "-q", "--set", "quantize.reduce_range=auto", "--set",
                   "quantize.variants=[dynamic]", "--set", "quantize.search=false") == 0
    run = tmp_path / "copy" / "run"
    rows = {r["variant"]: r for r in json.loads((run / "manifest.json").read_text())["stages"]["quantize"]["outputs"]
            ["variants"]}
    row = rows["pruned-int8-dynamic"]
    cands = row["quantization"]["candidates"]
    assert set(cands) == {"plain, 7-bit", "plain, 8-bit", "per-channel, 7-bit", "per-channel, 8-bit"}
    order = ("plain, 7-bit", "plain, 8-bit", "per-channel, 7-bit", "per-channel, 8-bit")  # the tie order
    first = min(order, key=lambda k: (cands[k]["damage_val"], -cands[k]["agreement_val"], -cands[k]["val"],
                                      order.index(k)))
    assert row["metric"]["val"] == cands[first]["val"]
    assert row["vs_source"]["damage_val"] == cands[first]["damage_val"]
    assert (row["quantization"]["per_channel"], row["quantization"]["reduce_range"]) == (
        first.startswith("per-channel"), first.endswith("7-bit"))
    assert (int8_weight_max(run / row["path"]) <= 64) == row["quantization"]["reduce_range"]
    # the bar follows the students' weight bits setting: here auto as well
    assert set(rows["teacher-int8-dynamic"]["quantization"]["candidates"]) == set(cands)
    # (and the no-KD student's copy where KD did not pay on validation, as on this tiny run)
    baseline = {"baseline-int8-dynamic.onnx"} if "baseline-int8-dynamic" in rows else set()
    assert {p.name for p in (run / "quantize").glob("*int8-dynamic*.onnx")} == {
        "pruned-int8-dynamic.onnx", "teacher-int8-dynamic.onnx"} | baseline


def _samples(correct: np.ndarray, answers: np.ndarray) -> Samples:
    return Samples(correct.astype(np.float64), np.ones(len(correct)), answers.astype(np.int64))


def test_a_copy_that_breaks_many_answers_loses_to_one_that_breaks_few_at_the_same_accuracy():
    from kdpipe.metrics import ACCURACY

    n = 200
    y = np.arange(n) % 2
    src = y.copy()
    src[:20] = 1 - y[:20]  # the source is wrong on the first 20
    many = src.copy()
    many[:20] = y[:20]  # fixes those 20 ...
    many[20:40] = 1 - y[20:40]  # ... and breaks 20 others: the same accuracy, 40 answers changed
    few = src.copy()
    few[20:21] = 1 - y[20:21]  # breaks 1: one point lower
    few[0:1] = y[0:1]  # and fixes 1: the same accuracy again, 2 answers changed
    source = {"val": _samples(src == y, src), "test": _samples(src == y, src)}

    def row(answers):
        s = _samples(answers == y, answers)
        return {"metric": {"val": float((answers == y).mean() * 100)},
                "vs_source": versus(ACCURACY, source, {"val": s, "test": s}, None)}

    rows = {(False, True, False): row(many), (True, True, False): row(few)}
    assert rows[(False, True, False)]["metric"]["val"] == rows[(True, True, False)]["metric"]["val"]
    # plain weights would win a tie: damage decides before that
    assert least_damaged(rows, higher_is_better=True) == (True, True, False)

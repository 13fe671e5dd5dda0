"""Quantization-aware distillation against every post-training answer, on one run's quantize source:
the fp32 source, kdpipe's post-training int8 copies (dynamic chosen by damage, static, the mixed
copy), its QAD copies, optimum's avx512_vnni dynamic preset (per-channel) and, where Intel's
neural-compressor 2.x can be imported, onnxruntime's static quantizer with SmoothQuant. Each scored on
the same validation and test samples (metric, answers of the fp32 source kept, what it broke) and
timed side by side in rounds at batch 1 on the same threads. Prints the issue's targets last.

    .venv/bin/kdpipe all configs/text-classification.yaml
    python benchmarks/qad.py configs/text-classification.yaml [--threads 1] [--smoothquant SITE_DIR]

SITE_DIR: a folder where `pip install --target SITE_DIR --no-deps neural-compressor==2.6 schema
py-cpuinfo prettytable "setuptools<81" opencv-python-headless six pycocotools` put neural-compressor
2.6 (3.x dropped the ONNX SmoothQuant onnxruntime imports); kdpipe's own environment stays as it is.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import config_parser, load

from kdpipe.data.splits import trim_padding
from kdpipe.evaluation.evidence import versus
from kdpipe.evaluation.scoring import evaluate_samples, onnx_predictor
from kdpipe.runtime.sessions import make_session, timed_call
from kdpipe.runtime.timing import measure_rounds


def _optimum(src: Path, saved: Path, out: Path) -> Path | None:
    """optimum's avx512_vnni dynamic preset with per-channel weights; None for a model optimum can't load."""
    if not (saved / "config.json").exists():
        return None
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    folder = out / "optimum-src"
    folder.mkdir()
    shutil.copyfile(src, folder / "model.onnx")
    shutil.copyfile(saved / "config.json", folder / "config.json")
    with contextlib.redirect_stdout(io.StringIO()):
        q = ORTQuantizer.from_pretrained(folder, file_name="model.onnx")
        q.quantize(save_dir=out / "optimum", quantization_config=AutoQuantizationConfig.avx512_vnni(
            is_static=False, per_channel=True))
    return next((out / "optimum").glob("*.onnx"))


def _smoothquant(src: Path, out: Path, feeds, calib: list[np.ndarray], names: list[str]) -> Path | None:
    """onnxruntime's static QDQ int8 with SmoothQuant (alpha 0.5, minmax calibration)."""
    try:
        import neural_compressor.adaptor.ox_utils.smooth_quant  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means: not available here
        print(f"SmoothQuant: not available ({type(e).__name__}: {e})")
        return None
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([feeds(names, b) for b in calib])

        def get_next(self):
            return next(self._it, None)

        def rewind(self):  # SmoothQuant reads the calibration data twice
            self._it = iter([feeds(names, b) for b in calib])

    prepared, dest = out / "sq-prepared.onnx", out / "smoothquant.onnx"
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    # folding the smoothing scales into the layers before fails on MiniLM's graph in neural-compressor
    # 2.6 (a scalar Mul constant): they stay as Mul nodes of their own
    for folding in (True, False):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(prepared), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                extra_options={"SmoothQuant": True, "SmoothQuantAlpha": 0.5,
                                               "SmoothQuantFolding": folding, "DefaultTensorType": 1})
            return dest
        except Exception as e:  # noqa: BLE001 - a third-party transform failing on this graph
            print(f"SmoothQuant (folding {folding}) failed on this graph: {type(e).__name__}: {e}")
    return None


def main() -> None:
    ap = config_parser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--smoothquant", help="site folder holding neural-compressor 2.x")
    args = ap.parse_args()
    if args.smoothquant:
        sys.path.insert(0, args.smoothquant)
    cfg, task, data = load(args)
    run = cfg.run_dir()
    manifest = json.loads((run / "manifest.json").read_text())
    q = manifest["stages"]["quantize"]["outputs"]
    source = q["source"]
    rows = {r["variant"]: r for s in ("distill", "prune") for r in manifest["stages"].get(s, {}).get("outputs", {})
            .get("variants", [])}
    src = run / "export" / f"{source}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        candidates = {f"{source} fp32": src}
        for r in q["variants"]:
            if r.get("source") == source and r["format"] in ("onnx-int8", "onnx-int4"):
                candidates[r["variant"]] = run / r["path"]
        opt = _optimum(src, run / rows[source]["path"], tmp)
        if opt:
            candidates["optimum avx512_vnni dynamic, per-channel"] = opt
        sess0, _ = make_session(src, "cpu", args.threads)
        names = [i.name for i in sess0.get_inputs()]
        rng = np.random.default_rng(0)
        calib = [data.train.x[i] for i in np.split(rng.permutation(len(data.train.x))[:64], 2)]
        sq = _smoothquant(src, tmp, task.feeds, calib, names)
        if sq:
            candidates["onnxruntime static + SmoothQuant"] = sq

        evidence, calls = {}, {}
        for name, path in candidates.items():
            sess, _ = make_session(path, "cpu", args.threads)
            predict = onnx_predictor(sess, task.feeds)
            evidence[name] = {s: evaluate_samples(predict, getattr(data, s), task.metric) for s in ("val", "test")}
            x = trim_padding(data.test.x[:1])
            calls[name] = (timed_call(sess, task.feeds(names, x), "cpu"), 1)
        timed = measure_rounds(calls, warmup=5, min_seconds=args.seconds, min_runs=20)
        sizes = {name: path.stat().st_size for name, path in candidates.items()}

    ref = {s: evidence[f"{source} fp32"][s][1] for s in ("val", "test")}
    fp32_ms = timed[f"{source} fp32"]["p50_ms"]
    print(f"\n{cfg.name}: {source} and its quantized copies; {args.threads} thread(s), batch 1, test "
          f"{task.metric.name}; kept/broken against the fp32 source")
    print(f"  {'copy':44s} {'val':>7s} {'test':>7s} {'kept val':>8s} {'kept test':>9s} {'broken':>7s} "
          f"{'MB':>6s} {'p50 ms':>8s} {'x fp32':>6s}")
    out = {}
    for name in candidates:
        ev = evidence[name]
        vs = versus(task.metric, ref, {"val": ev["val"][1], "test": ev["test"][1]}, data)
        out[name] = {"val": ev["val"][0], "test": ev["test"][0], **vs, "p50_ms": timed[name]["p50_ms"]}
        print(f"  {name:44s} {ev['val'][0]:7.2f} {ev['test'][0]:7.2f} {vs['agreement_val'] or 0:8.1f} "
              f"{vs['agreement_test'] or 0:9.1f} {vs['damage_val']:7.2f} {sizes[name] / 1e6:6.2f} "
              f"{timed[name]['p50_ms']:8.3f} {fp32_ms / timed[name]['p50_ms']:6.2f}")
    qad = next((k for k in out if k.endswith("-int8-qad")), None)
    if qad:
        o, f = out[qad], out[f"{source} fp32"]
        sign = 1 if task.metric.higher_is_better else -1
        print(f"\ntargets for {qad}: keeps {o['agreement_val']}% of validation answers (>= 98: "
              f"{'met' if o['agreement_val'] >= 98 else 'not met'}); test {o['test'] - f['test']:+.2f} against fp32 "
              f"(at most 0.5 below: {'met' if sign * (o['test'] - f['test']) >= -0.5 else 'not met'}); "
              f"{fp32_ms / o['p50_ms']:.2f}x the fp32 source at batch 1 (>= 1.8: "
              f"{'met' if fp32_ms / o['p50_ms'] >= 1.8 else 'not met'})")
        best_ptq = min((k for k in out if k not in (qad, f"{source} fp32") and "int4" not in k),
                       key=lambda k: (out[k]["damage_val"], -(out[k]["agreement_val"] or 0)), default=None)
        if best_ptq:
            b = out[best_ptq]
            beats = (o["damage_val"], -o["agreement_val"]) < (b["damage_val"], -b["agreement_val"])
            print(f"best post-training copy by damage: {best_ptq} (kept {b['agreement_val']}% val, test "
                  f"{b['test']:.2f}); QAD {'beats' if beats else 'does not beat'} it on damage")


if __name__ == "__main__":
    main()

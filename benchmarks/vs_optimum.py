"""kdpipe's int8 variants against optimum's ORTQuantizer (its avx512_vnni dynamic preset) on the same
exported transformer student, same threads, same test blocks. Prints latency and metric side by
side, ratios last.

    .venv/bin/kdpipe all configs/causal-lm.yaml
    python benchmarks/vs_optimum.py configs/causal-lm.yaml [--threads 1]
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from common import config_parser

from kdpipe.config.load import load_config
from kdpipe.data.splits import trim_padding
from kdpipe.evaluation.scoring import evaluate, onnx_predictor
from kdpipe.runtime.sessions import make_session, timed_call
from kdpipe.runtime.timing import measure_rounds
from kdpipe.tasks import get_task, load_data


def main() -> None:
    ap = config_parser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    task, data = get_task(cfg.task), load_data(cfg)
    run = cfg.run_dir()
    manifest = json.loads((run / "manifest.json").read_text())
    source = manifest["stages"]["quantize"]["outputs"]["source"]
    saved = run / next(
        r["path"] for r in manifest["stages"]["distill"]["outputs"]["variants"] if r["variant"] == source
    )

    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "fp32"
        src.mkdir()
        shutil.copyfile(run / "export" / f"{source}.onnx", src / "model.onnx")
        shutil.copyfile(saved / "config.json", src / "config.json")
        out = Path(tmp) / "optimum"
        with contextlib.redirect_stdout(io.StringIO()):
            quantizer = ORTQuantizer.from_pretrained(src, file_name="model.onnx")
            quantizer.quantize(save_dir=out, quantization_config=AutoQuantizationConfig.avx512_vnni(
                is_static=False, per_channel=False))
        candidates = {"fp32 (export)": run / "export" / f"{source}.onnx",
                      "optimum avx512_vnni dynamic": next(out.glob("*.onnx"))}
        for r in manifest["stages"]["quantize"]["outputs"]["variants"]:
            if r["format"] == "onnx-int8":
                candidates[f"kdpipe {r['variant']}"] = run / r["path"]
        metrics, calls = {}, {}
        for name, path in candidates.items():
            sess, _ = make_session(path, "cpu", args.threads)
            names = [i.name for i in sess.get_inputs()]
            metrics[name] = evaluate(onnx_predictor(sess, task.feeds), data.test, task.metric)
            for b in (1, 32):
                x = trim_padding(np.concatenate([data.test.x] * 2)[:b])  # as an app feeds texts
                calls[(name, b)] = (timed_call(sess, task.feeds(names, x), "cpu"), b)
        timed = measure_rounds(calls, warmup=5, min_seconds=args.seconds, min_runs=20)  # side by side, in rounds
        results = {name: (metrics[name], {b: timed[(name, b)] for b in (1, 32)}, path.stat().st_size)
                   for name, path in candidates.items()}

    print(f"\n{cfg.task}, {source}, sequence {data.sequence_length}, {args.threads} thread(s); test {task.metric.name}")
    for name, (metric, lat, size) in results.items():
        print(f"  {name:40s} {task.metric.name} {metric:8.3f}  p50 b1 {lat[1]['p50_ms']:7.3f} ms  "
              f"b32 {lat[32]['throughput_per_s']:7.1f} seq/s  {size / 1e6:5.2f} MB")
    opt = results["optimum avx512_vnni dynamic"]
    best = min((k for k in results if k.startswith("kdpipe")), key=lambda k: results[k][1][1]["p50_ms"])
    ours = results[best]
    print(f"\nfastest kdpipe int8 ({best}) vs optimum's preset: p50 b1 "
          f"{opt[1][1]['p50_ms'] / ours[1][1]['p50_ms']:.2f}x "
          f"faster, b32 throughput {ours[1][32]['throughput_per_s'] / opt[1][32]['throughput_per_s']:.2f}x; "
          f"{task.metric.name} {ours[0]:.3f} vs {opt[0]:.3f}")


if __name__ == "__main__":
    main()

"""How the accuracy-aware int8 search ranks nodes, two ways, on one run's quantize source: one run of
the fp32 model with each node's output recomputed as int8 computes it (kdpipe's ranking,
quantization/int8_search.local_sensitivity), against quantizing the whole graph with only that node in int8
and running it (exact, one quantization and one run per node). For the k most sensitive nodes of
each ranking kept in float, the mix's relative output error against fp32 and the validation answers it
broke; and the time each ranking took.

    python benchmarks/int8_search_rank.py configs/text-classification.yaml [--per-channel]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import config_parser, load

from kdpipe.evaluation.evidence import damage
from kdpipe.evaluation.scoring import evaluate_samples, onnx_predictor
from kdpipe.quantization.int8_search import (
    SENSITIVITY_SAMPLES,
    exact_sensitivity,
    exclusion_names,
    local_sensitivity,
    quantizable_nodes,
)
from kdpipe.quantization.quantizers import Int8, dynamic_int8, quiet_root_logger
from kdpipe.runtime.sessions import make_session


def _outputs(path: Path, feeds, x: np.ndarray, batch: int = 16) -> np.ndarray:
    predict = onnx_predictor(make_session(path, "cpu")[0], feeds)
    return np.concatenate([predict(x[i:i + batch]) for i in range(0, len(x), batch)])


def main() -> None:
    ap = config_parser()
    ap.add_argument("--per-channel", action="store_true")
    args = ap.parse_args()
    cfg, task, data = load(args)
    run = cfg.run_dir()


    q = json.loads((run / "manifest.json").read_text())["stages"]["quantize"]["outputs"]
    src = run / "export" / f"{q['source']}.onnx"
    ops = cfg.quantize.op_types or task.quantize_op_types
    ops = ops and ops + task.dynamic_extra_ops
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, quiet_root_logger():
        tmp = Path(tmp)
        prepared = tmp / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        nodes = quantizable_nodes(prepared, ops)
        x = data.val.x[:SENSITIVITY_SAMPLES]

        def make(out, exclude):
            dynamic_int8(prepared, out, Int8(args.per_channel, True, ops, exclusion_names(exclude)))

        t0 = time.perf_counter()
        local = local_sensitivity(prepared, nodes, task.feeds, x, args.per_channel, True)
        t_local = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact, probe = exact_sensitivity(prepared, make, nodes, task.feeds, x, None), tmp / "probe.onnx"
        t_exact = time.perf_counter() - t0
        print(f"{len(nodes)} nodes; ranking in one run: {t_local:.1f} s; exact (a quantization and a run per node): "
              f"{t_exact:.1f} s ({t_exact / max(t_local, 1e-9):.0f}x)")
        ref_val = evaluate_samples(onnx_predictor(make_session(prepared, "cpu")[0], task.feeds), data.val,
                                   task.metric)[1]
        full_out = _outputs(prepared, task.feeds, data.val.x)
        full_scale = float(full_out.var()) or 1.0
        print(f"{'kept float':>10s} {'error, one run':>15s} {'error, exact':>13s} {'broken, one run':>16s} "
              f"{'broken, exact':>14s}")
        for k in (0, 1, 2, 4, 8, 16):
            row = []
            for ranking in (local, exact):
                order = sorted(nodes, key=lambda n: -ranking[n])
                make(probe, order[:k])
                out = _outputs(probe, task.feeds, data.val.x)
                samples = evaluate_samples(onnx_predictor(make_session(probe, "cpu")[0], task.feeds), data.val,
                                           task.metric)[1]
                row.append((float(((out - full_out) ** 2).mean() / full_scale), damage(task.metric, ref_val, samples)))
            print(f"{k:10d} {row[0][0]:15.2e} {row[1][0]:13.2e} {row[0][1]:16.2f} {row[1][1]:14.2f}")
        top = lambda r: [n.split("/")[-2] + "/" + n.split("/")[-1] for n in sorted(nodes, key=lambda n: -r[n])[:5]]  # noqa: E731
        print("top 5, one run:", top(local))
        print("top 5, exact:  ", top(exact))


if __name__ == "__main__":
    main()

"""How fast each candidate shape of a derived transformer student would run, before training any:
the teacher's layers cut to a count and FFN width (weights copied from the teacher; speed does not
depend on their values), exported and fused by the embedding task as the pipeline does, made
dynamic int8 from the plain graph and from the fused one (which is faster depends on the CPU), then
timed at batch 1 side by side in rounds with the teacher in PyTorch eager and the teacher quantized
the same way; one thread, real text cut to each length.

    python benchmarks/student_shapes.py artifacts/teachers/all-MiniLM-L6-v2
    python benchmarks/student_shapes.py TEACHER --shapes 3:1536 4:768 4:512 --lengths 16 48
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from kdpipe.data.splits import Split
from kdpipe.models.hf import HFModule
from kdpipe.models.hf_derive import derive_student
from kdpipe.runtime.machine import machine_info
from kdpipe.runtime.sessions import make_session, timed_call
from kdpipe.runtime.timing import measure_rounds, torch_call
from kdpipe.tasks import get_task

TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light.")


def int8_onnx(model: HFModule, ids: torch.Tensor, folder: Path, name: str) -> dict[str, Path]:
    """Dynamic int8 (every op type the quantizer takes, per-tensor weights) of the plain and the fused
    graph; the export and the fusions are the embedding task's own."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    task = get_task("embedding")
    fp32, fused, prepared = folder / f"{name}.onnx", folder / f"{name}-fused.onnx", folder / f"{name}-prepared.onnx"
    out = {"int8": folder / f"{name}-int8.onnx", "int8 fused": folder / f"{name}-int8-fused.onnx"}
    x = np.stack([ids.numpy(), np.ones_like(ids.numpy())], axis=1)  # ids and mask stacked, as the tasks feed them
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task._export_pooled(model, SimpleNamespace(train=Split(x, np.zeros(len(x)))), fp32, 17)
        if not task.fuse(fp32, fused, model):
            raise SystemExit(f"student_shapes.py: onnxruntime fused nothing in {model.hf.config.model_type}")
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        for src, dest in ((prepared, out["int8"]), (fused, out["int8 fused"])):
            quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": 1})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("teacher", help="a BERT-family teacher folder (e.g. artifacts/teachers/all-MiniLM-L6-v2)")
    ap.add_argument("--shapes", nargs="+", default=["3:1536", "4:1536", "4:768", "4:512"],
                    help="LAYERS:FFN_WIDTH of each candidate (the first LAYERS teacher layers; which ones does not "
                         "change the speed)")
    ap.add_argument("--lengths", type=int, nargs="+", default=[16, 48])
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    tok, hf = AutoTokenizer.from_pretrained(args.teacher), AutoModel.from_pretrained(args.teacher).eval()
    teacher = HFModule(hf, pool=True).eval()
    n_layers, ffn = hf.config.num_hidden_layers, hf.config.intermediate_size
    models = {f"teacher ({n_layers}:{ffn})": teacher}
    for shape in args.shapes:
        layers, width = (int(v) for v in shape.split(":"))
        student, _, _ = derive_student(hf, list(range(layers)), {"intermediate_size": width} if width != ffn else None)
        models[f"student {layers}:{width}"] = HFModule(student, pool=True).eval()
    info = machine_info()
    print(f"{info.get('cpu')}; SIMD {', '.join(info.get('simd', []))}; 1 thread, batch 1, side by side in 5 rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for length in args.lengths:
            ids = tok([TEXT * 8], truncation=True, max_length=length, return_tensors="pt")["input_ids"]
            feeds = {"input_ids": ids.numpy(), "attention_mask": torch.ones_like(ids).numpy()}
            calls = {"teacher, PyTorch eager": (torch_call(teacher, ids), 1)}
            params = {"teacher, PyTorch eager": teacher}
            for i, (name, model) in enumerate(models.items()):
                for kind, path in int8_onnx(model, ids, Path(tmp), f"m{i}-{length}").items():
                    sess, _ = make_session(path, "cpu", 1)
                    calls[f"{name} {kind}"], params[f"{name} {kind}"] = (timed_call(sess, feeds, "cpu"), 1), model
            res = measure_rounds(calls, warmup=20, min_seconds=args.seconds, min_runs=200, rounds=5)
            base = res["teacher, PyTorch eager"]["p50_ms"]
            print(f"\n{length} tokens\n| model | params | p50 ms | vs PyTorch teacher |\n|---|---:|---:|---:|")
            for name, r in res.items():
                n = sum(p.numel() for p in params[name].parameters()) / 1e6
                print(f"| {name} | {n:.1f}M | {r['p50_ms']:.3f} | {base / r['p50_ms']:.2f}x |")


if __name__ == "__main__":
    main()

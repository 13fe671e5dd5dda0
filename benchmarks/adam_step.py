"""What one training step of a MiniLM-shaped student costs with Adam's default (per-tensor loop) and
fused update, and with the fused update under bf16 autocast (`precision: bf16`, what `precision:
auto` takes on a CPU with AVX512-BF16 or AMX), side by side in one process: forward + backward, then
the optimiser step, on random token batches of the lengths the text examples train on (no download:
the model is built from a config). kdpipe's training loop uses the fused update where torch has it
(CPU and CUDA).

    python benchmarks/adam_step.py                      # 3 layers of MiniLM's shape, batch 32 x 16 tokens
    python benchmarks/adam_step.py --layers 6 --tokens 48 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import BertConfig, BertModel

from kdpipe.runtime.machine import machine_info


def timed_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, ids: torch.Tensor, steps: int,
                bf16: bool = False) -> tuple[float, float]:
    """Median milliseconds of forward + backward, and of the optimiser step."""
    fwd_bwd, step = [], []
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    for i in range(steps + 2):  # two warm-up steps (allocations, lazy state)
        t0 = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids).last_hidden_state.float().pow(2).mean()
        loss.backward()
        t1 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if i >= 2:
            fwd_bwd.append((t1 - t0) * 1e3)
            step.append((t2 - t1) * 1e3)
    return statistics.median(fwd_bwd), statistics.median(step)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=args.layers, num_attention_heads=12,
                     intermediate_size=1536)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens))
    info = machine_info()
    print(f"BERT {args.layers} layers x 384 (vocab 30,522), batch {args.batch} x {args.tokens} tokens, "
          f"{args.threads} thread(s); {info['cpu']}, SIMD: {', '.join(info['simd']) or 'none listed'}")
    print("| Adam | forward+backward ms | optimiser step ms | whole step ms |\n|---|---:|---:|---:|")
    whole = {}
    for name, kw, bf16 in (("default", {}, False), ("fused", {"fused": True}, False),
                           ("fused, bf16 autocast", {"fused": True}, True)):
        torch.manual_seed(0)
        model = BertModel(cfg).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, **kw)
        fb, st = timed_steps(model, opt, ids, args.steps, bf16)
        whole[name] = fb + st
        print(f"| {name} | {fb:.1f} | {st:.1f} | {fb + st:.1f} |")
    print(f"fused / default, whole step: {whole['fused'] / whole['default']:.2f}; "
          f"bf16 autocast / fp32 (both fused): {whole['fused, bf16 autocast'] / whole['fused']:.2f}")


if __name__ == "__main__":
    main()

"""What dropout costs one training step of the embedding example's student shape (4 BERT layers, 384
wide, 12 heads, FFN 768, MiniLM's 30,522-token vocabulary): the teacher's rate (0.1, what a derived
student inherits) against none (`distill.dropout: 0.0`, kdpipe.models.dropout.set_dropout), side by side
in rounds in one process, so a load that comes and goes falls on both alike. Forward (mean-pooled,
cosine + MSE against fixed targets, as the embedding KD loss), backward and fused Adam step, on random
token batches (no download: the model is built from a config).

    python benchmarks/dropout_step.py                      # batch 32 x 32 tokens, 2 threads (as training)
    python benchmarks/dropout_step.py --tokens 16 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from kdpipe.models.dropout import set_dropout
from kdpipe.runtime.machine import machine_info


def step_ms(model: torch.nn.Module, opt: torch.optim.Optimizer, ids: torch.Tensor, target: torch.Tensor) -> float:
    t0 = time.perf_counter()
    emb = model(input_ids=ids).last_hidden_state.mean(1)
    loss = (1 - F.cosine_similarity(emb, target)).mean() + F.mse_loss(emb, target)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4, help="steps a model each round")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=args.layers, num_attention_heads=12,
                     intermediate_size=args.ffn, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    base = BertModel(cfg).train()
    models = {"dropout 0.1": base, "dropout 0.0": copy.deepcopy(base)}
    set_dropout(models["dropout 0.0"], 0.0)
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-4, fused=True) for k, m in models.items()}
    ids = torch.randint(1000, cfg.vocab_size, (args.batch, args.tokens))
    target = torch.randn(args.batch, 384)
    info = machine_info()
    print(f"BERT {args.layers} layers x 384, FFN {args.ffn}, batch {args.batch} x {args.tokens} tokens, "
          f"{args.threads} thread(s), fp32; {info['cpu']}, SIMD: {', '.join(info['simd']) or 'none listed'}")
    times: dict[str, list[float]] = {k: [] for k in models}
    for k in models:  # warm-up: allocations, Adam state
        for _ in range(2):
            step_ms(models[k], opts[k], ids, target)
    for _ in range(args.rounds):
        for k in models:
            times[k] += [step_ms(models[k], opts[k], ids, target) for _ in range(args.steps)]
    print("| student | median step ms |\n|---|---:|")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"| {k} | {v:.1f} |")
    print(f"no dropout / dropout 0.1, whole step: {med['dropout 0.0'] / med['dropout 0.1']:.2f}")


if __name__ == "__main__":
    main()

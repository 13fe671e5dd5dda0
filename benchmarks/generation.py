"""Generation speed of a causal-LM run's variants, side by side in one process on one thread, with the
targets of issue #38 checked: cached decoding against rerunning the prefix for the student, the
shipped bundle against the PyTorch teacher (its own KV cache), and int4 vs int8 vs fp32 (size,
perplexity, tokens/s). Greedy, batch 1, a test prompt; medians over rounds, models rotated each round.

    .venv/bin/kdpipe all configs/causal-lm.yaml
    .venv/bin/python benchmarks/generation.py configs/causal-lm.yaml [--rounds 7] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import json

import torch

from kdpipe.bundle.generation_timing import onnx_generation, time_generation, torch_generation
from kdpipe.config.load import load_config
from kdpipe.runtime.machine import machine_info
from kdpipe.runtime.sessions import make_session
from kdpipe.tasks import load_data, task_for


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    args = ap.parse_args()
    cfg = load_config(args.config)
    run = cfg.run_dir()
    manifest = json.loads((run / "manifest.json").read_text())
    out = lambda s: manifest["stages"][s]["outputs"]  # noqa: E731
    rows = {r["variant"] + ("" if r["format"] != "onnx-fp32" or "-" in r["variant"] else "-fp32"): r
            for s in ("export", "quantize") for r in out(s)["variants"]}
    bundle = out("export")["bundle"]["variant"]
    bundle = bundle if bundle in rows else f"{bundle}-fp32"
    wanted = ["student-fp32", "student-int8-dynamic", "student-int4", "teacher-fp32", "teacher-int8-dynamic", bundle]
    names = [n for n in dict.fromkeys(wanted) if n in rows]
    prompt = [int(t) for t in load_data(cfg).test.x[0][: args.prompt_tokens]]
    torch.set_num_threads(1)
    runs = {}
    for n in names:
        sess, _ = make_session(run / rows[n]["path"], "cpu", 1)
        runs[(n, True)] = onnx_generation(sess, prompt, args.new_tokens, True)
        runs[(n, False)] = onnx_generation(sess, prompt, args.new_tokens, False)
    teacher, _ = task_for(cfg).load(run / "distill" / "teacher", "teacher")
    runs[("teacher-pytorch", True)] = torch_generation(teacher.hf.eval(), prompt, args.new_tokens, True)
    timed = time_generation(runs, rounds=args.rounds)
    m = machine_info()
    rate = lambda n, cache=True: timed[(n, cache)]["decode_tokens_per_s"]  # noqa: E731
    print(f"{m['cpu']}, {m['cores']} cores, SIMD {', '.join(m['simd'])}; onnxruntime and torch on 1 thread; "
          f"a {len(prompt)}-token prompt, {args.new_tokens} new tokens, {args.rounds} rounds, medians")
    print("\n| variant | size (MB) | test perplexity | first token (ms) | decode tok/s (KV cache) | "
          "decode tok/s (prefix rerun) | cache speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in names:
        r = rows[n]
        print(f"| {n}{' (bundle)' if n == bundle else ''} | {r['size_bytes'] / 1e6:.2f} | {r['metric']['test']:.2f} | "
              f"{timed[(n, True)]['first_token_ms']:.2f} | {rate(n):.0f} | {rate(n, False):.0f} | "
              f"{rate(n) / rate(n, False):.2f}x |")
    t = timed[("teacher-pytorch", True)]
    print(f"| teacher, PyTorch eager (its own cache) | | | {t['first_token_ms']:.2f} | {rate('teacher-pytorch'):.0f} "
          "| | |")
    print()
    if "student-fp32" in names:
        speedup = rate("student-fp32") / rate("student-fp32", False)
        print(f"student fp32, KV cache vs prefix rerun at {args.new_tokens} tokens: {speedup:.2f}x (target >= 5x: "
              f"{'met' if speedup >= 5 else 'NOT met'})")
    versus = rate(bundle) / rate("teacher-pytorch")
    drop = rows[bundle]["metric"]["test"] - rows["teacher-fp32"]["metric"]["test"]
    print(f"bundle {bundle} vs the PyTorch teacher, decode tokens/s: {versus:.2f}x (target >= 3x: "
          f"{'met' if versus >= 3 else 'NOT met'}); its test perplexity {drop:+.2f} against the teacher's ONNX "
          f"(export.max_drop {cfg.export.max_drop:g})")


if __name__ == "__main__":
    main()

"""How long `kdpipe predict` takes to the first answer on a text bundle, a fresh process each time (what
a user or a script calling it sees), beside the same process importing transformers' tokenizer, which
predict used before it read tokenizer.json with `tokenizers` alone. Alternating runs, medians.

    python benchmarks/predict_startup.py artifacts/text-classification/export/bundle [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from kdpipe.runtime.machine import machine_info


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    predict = [sys.executable, "-m", "kdpipe", "predict", args.bundle, "--text", "How do I read a file line by line?"]
    old_way = [sys.executable, "-c", "from transformers import AutoTokenizer; "
                                     f"AutoTokenizer.from_pretrained({args.bundle!r})"]
    bare = [sys.executable, "-c", "pass"]
    times = {"predict": [], "transformers tokenizer load alone": [], "python start": []}
    for _ in range(args.runs):  # alternating, so a load on the machine falls on all alike
        times["predict"].append(wall(predict))
        times["transformers tokenizer load alone"].append(wall(old_way))
        times["python start"].append(wall(bare))
    m = machine_info()
    print(f"{m['cpu']}, {m['cores']} cores, SIMD {', '.join(m['simd'])}; {args.runs} runs each, median wall seconds")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:36s} {v:6.3f} s")
    print(f"predict to the first answer: {med['predict']:.3f} s; the transformers import it no longer pays alone "
          f"took {med['transformers tokenizer load alone'] / med['predict']:.1f}x as long")


if __name__ == "__main__":
    main()

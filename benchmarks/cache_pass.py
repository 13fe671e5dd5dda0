"""The teacher's pass that fills the training cache (kdpipe.training.teacher_cache.build) on padded
texts: in data order, as build ran them until 2026-12-02, against shortest first, as it runs them
now (the model cuts the columns no text of a batch uses, so sorted batches compute little padding).
Same teacher, texts, batch size and hidden layers; rounds interleave the two, so drift in the
machine's speed falls on both. Prints the ratio last.

    python benchmarks/cache_pass.py configs/embedding.yaml --texts 4000 --hidden 6
    python benchmarks/cache_pass.py configs/text-classification.yaml --texts 2000 --hidden 1 3 5 6 \\
        --set data.extra_texts_max=2000
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from common import config_parser, load

from kdpipe.runtime.machine import machine_info
from kdpipe.training.loop import seed_everything
from kdpipe.training.teacher_cache import build

BATCH = 64  # build's batch size


@torch.inference_mode()
def data_order(teacher, x: torch.Tensor, hidden: tuple[int, ...]) -> None:
    """build's loop before it sorted: batches as the texts come."""
    for i in range(0, len(x), BATCH):
        teacher(x[i : i + BATCH])
        if hidden:
            torch.stack([teacher.hidden[j] for j in hidden], dim=2).half()


def columns(x: np.ndarray, order: np.ndarray) -> float:
    """Mean columns a batch computes when the model cuts what none of its texts uses."""
    lengths = x[order, 1].sum(-1)
    return float(np.mean([lengths[i : i + BATCH].max() for i in range(0, len(x), BATCH)]))


def main() -> None:
    ap = config_parser()
    ap.add_argument("--texts", type=int, default=4000, help="training texts sampled (seeded)")
    ap.add_argument("--hidden", type=int, nargs="*", default=[], help="teacher layers whose hidden states are kept")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cfg, task, data = load(args)
    seed_everything(cfg.seed)
    teacher, _ = task.build("teacher", cfg, data)
    teacher.eval()
    hidden = tuple(args.hidden)
    teacher.capture = bool(hidden)
    pick = np.sort(np.random.default_rng(0).permutation(len(data.train.x))[: args.texts])
    xn = data.train.x[pick]
    if xn.ndim != 3:
        raise SystemExit(f"{args.config}: the inputs are not padded texts; there is nothing to sort")
    x = torch.from_numpy(xn)
    runs = {"data order (before)": lambda: data_order(teacher, x, hidden),
            "shortest first (now)": lambda: build(teacher, x, hidden=hidden, batch_size=BATCH)}
    build(teacher, x[:BATCH], hidden=hidden, batch_size=BATCH)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - t0)
    m = machine_info()
    print(
        f"{args.config}: {len(x)} training texts of at most {x.shape[-1]} tokens (mean "
        f"{xn[:, 1].sum(-1).mean():.1f}), batch {BATCH}, hidden layers {list(hidden) or 'none'}; "
        f"{m.get('cpu')}, SIMD {', '.join(m['simd']) or 'none'}, {torch.get_num_threads()} threads, {args.rounds} "
        "rounds"
    )
    cols = {"data order (before)": columns(xn, np.arange(len(xn))),
            "shortest first (now)": columns(xn, np.argsort(xn[:, 1].sum(-1), kind="stable"))}
    med = {name: statistics.median(v) for name, v in seconds.items()}
    for name in runs:
        print(f"  {name:22s} {med[name]:7.2f} s (median), {cols[name]:5.1f} columns a batch on average")
    before, now = med["data order (before)"], med["shortest first (now)"]
    print(f"shortest first / data order: {now / before:.2f}x the time")


if __name__ == "__main__":
    main()

"""Which teacher layers a derived student should keep: every subset of k layers scored before any
training with the config's metric (validation, test, other source), beside the subset the greedy
layer search picks (`student.params.layers: k`, hf_prune.rank_blocks) and the one a per-layer score
picks (ShortGPT's 1 - cosine between a block's input and output, kdpipe's ranking before). Full
widths: only the choice of layers differs.

    python benchmarks/layer_search.py configs/embedding.yaml --keep 3 4
"""

from __future__ import annotations

import itertools
import time

import torch
from common import config_parser, load

from kdpipe.evaluation.scoring import evaluate, torch_predictor
from kdpipe.models.hf import layer_list
from kdpipe.models.hf_prune import IMPORTANCE_SAMPLES, LAYER_SEARCH_SAMPLES, _inputs, rank_blocks


@torch.inference_mode()
def per_block_change(model, x) -> torch.Tensor:
    """ShortGPT's block importance: 1 - cosine between a block's input and output, over real tokens."""
    _, stack = layer_list(model)
    acc, seen, mask = torch.zeros(len(stack)), {}, {}
    hooks = []
    for i, block in enumerate(stack):
        hooks.append(block.register_forward_pre_hook(
            lambda m, a, k, i=i: seen.__setitem__(i, a[0] if a else k["hidden_states"]), with_kwargs=True))
        hooks.append(block.register_forward_hook(
            lambda m, a, k, o, i=i: acc.__setitem__(i, acc[i] + ((1 - torch.nn.functional.cosine_similarity(
                seen[i], o[0] if isinstance(o, tuple) else o, dim=-1)) * mask["m"]).sum()), with_kwargs=True))
    try:
        for j in range(0, len(x), 16):
            ids, m = _inputs(x[j:j + 16])
            mask["m"] = m.float()
            model(input_ids=ids, attention_mask=m)
    finally:
        for h in hooks:
            h.remove()
    return acc


def main() -> None:
    ap = config_parser()
    ap.add_argument("--keep", type=int, nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, task, data = load(args)
    teacher, _ = task.build("teacher", cfg, data)
    x = data.train.x[:IMPORTANCE_SAMPLES]
    t0 = time.perf_counter()
    greedy = rank_blocks(teacher.hf, x[:LAYER_SEARCH_SAMPLES])
    searched = time.perf_counter() - t0
    change = per_block_change(teacher.hf, x)
    n = len(greedy)
    print(f"{cfg.name}: {n} teacher layers; greedy removal scores {greedy.tolist()} ({searched:.1f} s, "
          f"{LAYER_SEARCH_SAMPLES} inputs); per-block 1 - cosine {[round(float(c), 1) for c in change]}")
    other = getattr(data, "other", None)
    for k in args.keep:
        picks = {"greedy": sorted(torch.argsort(greedy, descending=True)[:k].tolist()),
                 "per-block": sorted(torch.argsort(change, descending=True)[:k].tolist())}
        rows = []
        for subset in itertools.combinations(range(n), k):
            params = {"layers": list(subset), "init": "slice"}
            c = cfg.model_copy(update={"student": cfg.student.model_copy(update={"params": params})})
            student, _ = task.build("student", c, data, teacher)
            predict = torch_predictor(student)
            scores = [evaluate(predict, s, task.metric) for s in (data.val, data.test, *([other] if other else []))]
            rows.append((scores, list(subset)))
        rows.sort(key=lambda r: -r[0][0])
        print(f"\nkeep {k} of {n} ({task.metric.name}, sorted by validation)\n| layers | picked by | val | test |"
              + (" other source |" if other else "") + "\n|---|---|" + "---:|" * (3 if other else 2))
        for scores, subset in rows:
            by = ", ".join(name for name, p in picks.items() if p == subset)
            print(f"| {', '.join(map(str, subset))} | {by} | " + " | ".join(f"{s:.2f}" for s in scores) + " |")


if __name__ == "__main__":
    main()

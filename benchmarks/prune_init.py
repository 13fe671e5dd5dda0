"""Where a narrow derived transformer student starts, before any training: the same widths taken as
the leading slice of the teacher's matrices (init: slice), as the teacher's most important
channels, heads and neurons by activation (init: prune, Minitron), or fresh; scored with the
config's metric on its validation and test splits, side by side in one process.

    python benchmarks/prune_init.py configs/embedding-pruned.yaml
    python benchmarks/prune_init.py configs/embedding-pruned.yaml --set 'student.params.layers=every_other'
"""

from __future__ import annotations

import time

import torch
from common import config_parser, load

from kdpipe.evaluation.scoring import evaluate, torch_predictor
from kdpipe.models.checkpoint import count_params


def main() -> None:
    ap = config_parser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, task, data = load(args)
    if cfg.student.model != "derive:teacher":
        raise SystemExit("prune_init.py: the config's student must be derive:teacher")
    teacher, _ = task.build("teacher", cfg, data)
    print(f"{cfg.name}: student params {dict(cfg.student.params)}; metric {task.metric.name}")
    other = getattr(data, "other", None)  # data.other_source, when the config names one
    print("| init | params | build s | val | test |" + (" other source |\n|---|---:|---:|---:|---:|---:|" if other
                                                      else "\n|---|---:|---:|---:|---:|"))
    for init in ("slice", "prune", "fresh"):
        params = {**cfg.student.params, "init": init}
        c = cfg.model_copy(update={"student": cfg.student.model_copy(update={"params": params})})
        torch.manual_seed(cfg.seed + 1)
        t0 = time.perf_counter()
        student, _ = task.build("student", c, data, teacher)
        built = time.perf_counter() - t0
        predict = torch_predictor(student)
        print(f"| {init} | {count_params(student):,} | {built:.1f} | {evaluate(predict, data.val, task.metric):.2f} | "
              f"{evaluate(predict, data.test, task.metric):.2f} |" +
              (f" {evaluate(predict, other, task.metric):.2f} |" if other else ""))


if __name__ == "__main__":
    main()

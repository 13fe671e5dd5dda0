"""Data-parallel training under the launchers users already have: torchrun and `accelerate launch`.

Both set RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT; kdpipe joins that process group (NCCL on
GPUs, gloo on CPUs). Training stages run on every process with the student in DDP (the frozen
teacher is never wrapped: it only runs forward); everything else runs on rank 0, which alone
writes artifacts, checkpoints, the manifest and the report. Without those variables every helper
here is a no-op and kdpipe runs as one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("KDPIPE_DIST_BACKEND") != "gloo" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(obj):
    """rank 0's value on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float], device: str = "cpu") -> list[float]:
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def wrap(model: torch.nn.Module, device: str) -> torch.nn.Module:
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.cuda.current_device()] if device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


def shard(n: int) -> slice:
    """This rank's contiguous share of n items (shares differ by at most one)."""
    r, w = rank(), world()
    return slice(r * n // w, (r + 1) * n // w)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

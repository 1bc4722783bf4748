"""torchrun / DistributedDataParallel plumbing: process group, device, per-rank seeds, reductions."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(requested: str, local_rank: int) -> torch.device:
    if requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init_distributed(requested_device: str = "auto") -> DistContext:
    """Join the torchrun process group if there is one (NCCL on GPUs, gloo on CPU); else a 1-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _pick_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(base_seed: int, epoch: int, rank: int) -> int:
    """A distinct seed per (epoch, rank).

    Re-seeding at every epoch start makes a run resumed at an epoch boundary draw the same random numbers
    (augmentation, mixup, drop path) as an uninterrupted one, without saving RNG states per rank.
    """
    return (base_seed * 1_000_003 + epoch * 1_009 + rank) % 2**31


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a few numbers over all processes (float64 so counts stay exact)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    return all_reduce_sum([value], ctx)[0] / ctx.world_size


def fail_together(error: BaseException | None, ctx: DistContext) -> None:
    """Raise on every rank if any rank failed a check, so no rank waits forever in the next collective."""
    if not ctx.distributed:
        if error is not None:
            raise error
        return
    flags = all_reduce_sum([1.0 if error is not None else 0.0], ctx)
    if error is not None:
        raise error
    if flags[0] > 0:
        raise RuntimeError("another training process stopped on an error (see its message above)")

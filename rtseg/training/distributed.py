"""DistributedDataParallel under torchrun: one process per GPU (or CPU, with gloo).

`torchrun --nproc_per_node N -m rtseg train RECIPE` sets RANK / WORLD_SIZE / LOCAL_RANK;
without them everything here is a no-op and training runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place: rank 0 of 1 when not distributed."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The one process that writes files and prints."""
        return self.rank == 0


def init_world(device: torch.device) -> World:
    """Join the torchrun process group if launched by torchrun (nccl on CUDA, else gloo)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def close_world(world: World) -> None:
    """Leave the process group (after a final barrier)."""
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def sum_across(world: World, array: np.ndarray) -> np.ndarray:
    """Element-wise sum of an int64/float64 array over all ranks (identity in one process)."""
    if world.size == 1:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.numpy()


def broadcast_flag(world: World, flag: bool) -> bool:
    """Rank 0's decision (e.g. early stop), the same on every rank."""
    if world.size == 1:
        return flag
    tensor = torch.tensor([int(flag)])
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def broadcast_buffers(module: torch.nn.Module, world: World) -> None:
    """Rank 0's buffers (e.g. BatchNorm running statistics) on every rank, in place."""
    if world.size == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)

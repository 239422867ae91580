"""Data-parallel plumbing: process group set-up from torchrun's environment, gradient averaging, agreement.

We average gradients with one explicit all-reduce per step instead of wrapping the model in
DistributedDataParallel: C-steps and N-steps use different parameter subsets (DDP would need
find_unused_parameters and its hooks fight torch.compile, which is why the seed ran with
TORCHDYNAMO_OPTIMIZE_DDP=0), and one flat all-reduce after the last micro-batch is exact and simple. The
cost is no overlap of communication with the backward pass; for models of ~10-30M parameters on NVLink
that is well under a millisecond per step.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str, timeout_s: float = 600.0) -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); a plain process is rank 0 of 1.

    gloo on CPU, NCCL on GPU. The timeout bounds how long a rank waits for a peer that died, so a lost
    process ends the trial instead of hanging it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    world_size=world)
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        kwargs = {}
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
            kwargs["device_id"] = torch.device("cuda", info.local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    return info


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def cpu_threads(local_world_size: int = 1) -> int:
    """Threads this process may use: OMP_NUM_THREADS when set (Ray sets it to the trial's CPU allotment),
    else the CPUs this process is allowed to run on, shared among the local processes."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) // max(local_world_size, 1))


def average_gradients(model: nn.Module, info: DistInfo) -> None:
    """Average gradients over ranks with one flat all-reduce per dtype. A parameter without a gradient (unused
    in this step's forward mode) has none on every rank, since the step kind is the same on all of them."""
    if not info.enabled:
        return
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for p in model.parameters():
        if p.grad is not None:
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= info.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def broadcast_parameters(model: nn.Module, info: DistInfo) -> None:
    """Start every rank from rank 0's weights (they are seeded alike; this makes it a guarantee)."""
    if not info.enabled:
        return
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=0)


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sums of a few floats over ranks in one fp64 all-reduce (the identity on one process)."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()

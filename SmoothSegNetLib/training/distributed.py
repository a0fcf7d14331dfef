"""Multi-process training through ``torchrun`` (PyTorch DDP): rank bookkeeping in one place.

``torchrun --nproc_per_node N -m SmoothSegNetLib train --config C -o OUT`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address; :func:`setup` then joins the process group (NCCL on CUDA, gloo
on CPU). Only rank 0 writes files; validation is computed on rank 0 and broadcast so every rank takes the
same early-stopping decision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, with ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistInfo:
    """Join the process group if launched by torchrun (``WORLD_SIZE`` > 1); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def broadcast_float(value: float, info: DistInfo) -> float:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def parameter_checksums(network: torch.nn.Module, info: DistInfo) -> list[float]:
    """Sum of |parameters| (float64) of every rank's copy of ``network``, gathered on every rank.

    DDP keeps the copies equal by construction; the trainer checks it at the end of a run.
    """
    total = torch.zeros(1, dtype=torch.float64)
    for parameter in network.parameters():
        total += parameter.detach().double().abs().sum().cpu()
    if not info.enabled:
        return [float(total.item())]
    import torch.distributed as dist

    gathered = [torch.zeros(1, dtype=torch.float64) for _ in range(info.world_size)]
    dist.all_gather(gathered, total)
    return [float(t.item()) for t in gathered]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def teardown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

"""One training run on several processes (`torchrun`, or `accelerate launch`, which runs
torchrun): this process's rank, and the sums the processes share.

Each process takes every n-th example of each batch. The loss is summed over its own target
tokens and divided by the batch's target tokens over all processes; the gradients are then
summed over the processes. So a step is the step one process would take on the whole batch,
and the processes' LoRA weights stay equal (they start equal: the initialisation is seeded).
Only rank 0 writes checkpoints and the adapter.

This does not go through DistributedDataParallel: the loss (`trainer.batch_loss`) calls the
decoder and the output layer directly, past any wrapper, where DDP would not see the step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run (rank 0 of 1 when it runs alone)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes (checkpoints, the adapter, the record)."""
        return self.rank == 0

    def share(self, batch: Sequence[int]) -> list[int]:
        """This process's examples of a batch (none when the batch has fewer than `world`)."""
        return list(batch[self.rank :: self.world])

    def sum(self, values: Sequence[float], device: str) -> list[float]:
        """Each value summed over the processes."""
        if self.world == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        total = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return [float(v) for v in total]

    def sum_gradients(self, params: Sequence[Any], loss: float) -> float:
        """Sum every parameter's gradient (none counts as zero) over the processes, in one
        message that also carries `loss`; the summed loss."""
        if self.world == 1:
            return loss
        import torch
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        carried = torch.tensor([loss], dtype=grads[0].dtype, device=grads[0].device)
        flat = torch.cat([*(g.reshape(-1) for g in grads), carried])
        dist.all_reduce(flat)
        pieces = flat[:-1].split([p.numel() for p in params])
        for param, piece in zip(params, pieces, strict=True):
            param.grad = piece.view_as(param)
        return float(flat[-1])

    def wait(self) -> None:
        """Until every process is here (after rank 0 wrote a checkpoint)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def current_ranks() -> Ranks:
    """The rank and world size the launcher set (RANK, WORLD_SIZE), without joining."""
    return Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def join_ranks(device: str) -> Ranks:
    """Join the launcher's process group (NCCL on GPUs, gloo on the CPU) when there is one."""
    ranks = current_ranks()
    if ranks.world == 1:
        return ranks
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def local_device(device: str) -> str:
    """`cuda` -> this process's own GPU (`cuda:LOCAL_RANK`) in a run of several processes."""
    local = os.environ.get("LOCAL_RANK")
    if device != "cuda" or local is None or current_ranks().world == 1:
        return device
    import torch

    torch.cuda.set_device(int(local))
    return f"cuda:{int(local)}"

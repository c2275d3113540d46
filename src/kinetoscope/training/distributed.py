"""Data-parallel training over torch.distributed, in the processes torchrun starts.

``torchrun --nproc_per_node N -m kinetoscope train dit ...`` runs the command N times, each with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment (one process per GPU; on a CPU,
processes that split its cores). Every process draws the same whole batch (a step's batch is a
pure function of the seed and the step, as resuming needs anyway), keeps its share of the clips
(:meth:`World.shard`), and DistributedDataParallel averages the gradients. The training loss
scales each share so that this average is the whole batch's gradient: N processes train the
model one process would, to float rounding, and a run may resume on another number of them.
Only rank 0 writes checkpoints, the log and the export.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class World:
    """This process's place among the ``size`` training processes (one: ``World()``)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes: checkpoints, the log, the export, progress bars."""
        return self.rank == 0

    def say(self, *args, **kwargs) -> None:
        """``print``, in the main process only (the others would repeat it)."""
        if self.main:
            print(*args, **kwargs)

    def shard(self, clips: int) -> slice:
        """This process's clips of a batch of ``clips``: every ``size``-th from ``rank`` on."""
        return slice(self.rank, clips, self.size)

    def place(self, device: torch.device) -> torch.device:
        """One GPU per process: ``cuda`` becomes ``cuda:LOCAL_RANK``; other devices are kept."""
        if device.type == "cuda" and self.size > 1 and device.index is None:
            device = torch.device("cuda", self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set in any process (a stop request every process must act on together)."""
        if self.size == 1:
            return flag
        value = torch.tensor([float(flag)], device=_collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (for the log: the whole batch's loss)."""
        if self.size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.size

    def barrier(self) -> None:
        """Wait until every process is here (e.g. rank 0 has written the latent cache)."""
        if self.size > 1:
            dist.barrier()


@dataclass(frozen=True)
class Share:
    """This process's clips (``world.shard(batch)``) of a data-parallel step's ``batch`` clips."""

    world: World
    batch: int

    def draw(self, draw, shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``draw`` (``torch.rand`` / ``torch.randn``, on ``like``'s device and dtype) for the whole
        batch, cut to this share (``shape`` is the share's): every process draws the same numbers
        in the same order as one process alone, so a data-parallel run is that run."""
        values = draw((self.batch, *shape[1:]), generator=generator, device=like.device, dtype=like.dtype)
        return values[self.world.shard(self.batch)]


def data_parallel(module: nn.Module, device: torch.device) -> DistributedDataParallel:
    """``module`` (already on ``device``, the same weights in every process) wrapped so that its
    gradients are averaged over the processes in backward."""
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def launched() -> bool:
    """Whether torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment (NCCL on CUDA, else gloo);
    one process not started that way is ``World()``, and nothing is initialised."""
    if not launched():
        return World()
    if not dist.is_initialized():
        # An hour, not the default 10 (NCCL) minutes: the other processes wait at a barrier while
        # rank 0 encodes the latent cache, which takes minutes on a CPU.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=1))
    return current()


def current() -> World:
    """The world of an initialised process group, else ``World()``."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def finish(*, wait: bool = True) -> None:
    """Leave the process group, if this process joined one; with ``wait``, once every process has
    come this far (with gloo, a process that leaves while rank 0 still writes its checkpoint
    aborts: measured, 1 run in 6). ``wait=False`` is for leaving on an error, where the others
    may never arrive."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def run_in_group(device: torch.device, body: Callable[[World, torch.device], int]) -> int:
    """``body(world, device)`` in the process group torchrun describes (or alone: ``World()``), the
    device placed for this process; then leave the group, after every process is done, or at once
    when ``body`` raises. Returns ``body``'s exit code."""
    world = init(device)
    try:
        code = body(world, world.place(device))
    except BaseException:
        finish(wait=False)
        raise
    finish()
    return code


def _collective_device() -> torch.device:
    # NCCL reduces only CUDA tensors; gloo, CPU ones.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")

"""Data-parallel training over torch.distributed, in the processes torchrun starts.

``torchrun --nproc_per_node N -m kinetoscope train dit ...`` runs the command N times, each with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment (one process per GPU; on a CPU,
processes that split its cores). Every process draws the same whole batch (a step's batch is a
pure function of the seed and the step, as resuming needs anyway), keeps its share of the clips
(:meth:`World.shard`), and DistributedDataParallel averages the gradients. The training loss
scales each share so that this average is the whole batch's gradient: N processes train the
model one process would, to float rounding, and a run may resume on another number of them.
Only rank 0 writes checkpoints, the log and the export.

With :func:`fully_shard` (``train dit --fsdp``) each process holds only its slice of the weights,
gradients, optimizer state and EMA (PyTorch's FSDP2): a block's weights are gathered for its
forward and backward and freed after, and gradients are reduce-scattered (averaged, as DDP's) to
the slices. Checkpoints hold whole tensors all the same (:func:`gathered` before writing,
:func:`scattered_like` after reading), so a run may resume with or without sharding, on any
number of processes.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, distribute_tensor
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


def fully_shard(module: nn.Module, units: Iterable[nn.Module], world: World, device: torch.device) -> nn.Module:
    """Shard ``module``'s parameters (on ``device``, the same weights in every process) over the
    processes, in place: each of ``units`` (e.g. the transformer blocks) is gathered and freed
    on its own, the rest of ``module`` as one more unit. Parameters become DTensors holding this
    process's slice; ``module.state_dict()`` and the optimizer's state hold slices too."""
    from torch.distributed.fsdp import fully_shard as shard

    mesh = init_device_mesh(device.type, (world.size,))
    for unit in units:
        shard(unit, mesh=mesh)
    shard(module, mesh=mesh)
    # FSDP warns when a unit returns a view (the joint-attention blocks return text and video
    # as slices of one sequence), because an in-place op on it would skip the gradient's
    # reduce-scatter; the model only ever reads block outputs (the sharded-training test
    # checks its gradients against one process).
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    return module


def gathered(state: Any) -> Any:
    """``state`` (a state dict, an optimizer's, nested dicts and lists) with every sharded tensor
    gathered whole; other values as they are. Every process must call it, in the same order."""
    if isinstance(state, DTensor):
        return state.full_tensor()
    if isinstance(state, dict):
        return {key: gathered(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(gathered(value) for value in state)
    return state


def scattered_like(whole: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``whole`` (a tensor as :func:`gathered` gives it) cut to ``like``'s slice when ``like`` is
    sharded, else moved to its device."""
    if isinstance(like, DTensor):
        return distribute_tensor(whole.to(like.device), like.device_mesh, like.placements)
    return whole.to(like.device)


def scattered_optimizer_state(state: dict[str, Any], params: list[torch.Tensor]) -> dict[str, Any]:
    """An optimizer state dict of whole tensors (``gathered(optimizer.state_dict())``) with each
    parameter's per-element state (Adam's moments) cut to that parameter's slice, for
    ``optimizer.load_state_dict`` over sharded ``params`` (in the optimizer's order)."""
    per_param = {}
    for index, values in state["state"].items():
        param = params[int(index)]
        per_param[index] = {
            key: scattered_like(value, param) if torch.is_tensor(value) and value.shape == param.shape else value
            for key, value in values.items()
        }
    return {**state, "state": per_param}


def as_float(value: torch.Tensor) -> float:
    """A scalar tensor's value, a sharded one's (e.g. a gradient norm over sharded weights) included."""
    return float(value.full_tensor() if isinstance(value, DTensor) else value)


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
    except BaseException as err:
        finish(wait=False)
        if world.size > 1 and _peer_lost(err):
            # A process that failed (e.g. rank 0 on a bad cache folder while the others wait for
            # it) prints why; the ones it leaves say so in a line, not a transport traceback.
            sys.stderr.write(f"kinetoscope: rank {world.rank} stopped: another training process failed (its message says why)\n")
            return 1
        raise
    finish()
    return code


def _peer_lost(err: BaseException) -> bool:
    # What gloo and NCCL raise in a collective whose peer has gone.
    gone = ("closed by peer", "reset by peer", "broken pipe", "communicator was aborted", "remote process exited")
    return isinstance(err, RuntimeError) and any(words in str(err).lower() for words in gone)


def _collective_device() -> torch.device:
    # NCCL reduces only CUDA tensors; gloo, CPU ones.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")

"""Training checkpoints: atomic saves, the latest one found for resuming, the last k kept.

A checkpoint is one ``torch.save`` file, ``step_00001200.pt`` in the run folder, holding
whatever state dict the trainer hands over (model, optimizer, step, RNG states, config). It
is written to a temporary beside the target and renamed, so a run killed mid-save leaves the
previous checkpoint intact and never a truncated file under a checkpoint's name.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives in ``run_dir``."""
    return Path(run_dir) / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The (step, path) of every checkpoint in ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``run_dir``, or None when it has none."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(state: dict[str, Any], run_dir: str | Path, step: int, *, keep_last: int = 3) -> Path:
    """Write ``state`` as the checkpoint of ``step`` atomically, then drop all but the newest ``keep_last``."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1, got {keep_last}")
    target = checkpoint_path(run_dir, step)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            # Durable before the rename: otherwise a power cut could leave the new name on an empty file.
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return target


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (onto the CPU; callers move tensors)."""
    # weights_only=False: the state holds RNG states and plain config dicts next to tensors,
    # and checkpoints are files this program wrote for itself, not downloads.
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict[str, Any]:
    """The global random states a training step may draw from (torch CPU, CUDA when present)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured (the CUDA part only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

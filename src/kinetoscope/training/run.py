"""What every training loop here shares: the log file, the device choice, stopping cleanly."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

from kinetoscope.errors import KinetoscopeError

LOG_NAME = "log.jsonl"


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; anything else is passed to torch.

    Raises KinetoscopeError when the device is not usable here (``cuda`` on a CPU machine, a typo).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        raise KinetoscopeError(f"--device {name}: not usable here ({err})") from None
    return device


# Mixed precision of a training step: "auto" is bf16 autocast on CUDA and float32 elsewhere (the
# CPU recipes' numbers); "bf16" asks for it on a CPU too, which pays on CPUs with bf16 matrix units
# (Intel AMX: on this machine's, a VAE step of 4 clips 0.27 s against 0.57, a step of the shipped DiT
# recipe 0.45 against 0.58) and costs on older ones (12x slower on an earlier 2-core machine);
# "fp32" turns it off on CUDA too. Weights, optimizer state and EMA stay float32 in every case.
PRECISIONS = ("auto", "bf16", "fp32")


def uses_bf16(device: torch.device, precision: str) -> bool:
    """Whether a training step on ``device`` at ``precision`` (see ``PRECISIONS``) autocasts to bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context a training step on ``device`` runs under (see ``PRECISIONS``)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, precision))


def check_compiler(device: torch.device) -> None:
    """Raise KinetoscopeError when torch.compile cannot build kernels for ``device``: on a CPU,
    TorchInductor needs a C++ compiler (``CXX``, else g++, clang++ or c++ on the PATH)."""
    if device.type != "cpu":
        return
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++", "c++"]
    if not any(shutil.which(name) for name in candidates):
        raise KinetoscopeError(
            f"--compile: TorchInductor needs a C++ compiler on a CPU and found none of {', '.join(candidates)}; "
            "install g++ or run without --compile"
        )


def compile_transformer(module: torch.nn.Module, device: torch.device) -> None:
    """Compile ``module``'s forward in place with torch.compile (TorchInductor), its parameters and
    state-dict keys unchanged, so checkpoints, EMA and DDP see the same module.

    Inductor writes C++ kernels on a CPU: raises KinetoscopeError when no C++ compiler is on the
    PATH (or in ``CXX``), before a step fails on it with a long traceback.
    """
    check_compiler(device)
    # The transformer's check for an all-True attention mask (skipped for SDPA's faster unmasked
    # path) breaks the graph by design, and RoPE's complex product stays an eager kernel (a
    # real-valued rewrite measured slower eager and no faster compiled); say neither on each run.
    logging.getLogger("torch._dynamo.variables.tensor").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex")
    # One graph per input shape (the trainer pads caption lengths so that a run has one per bucket),
    # not dynamic shapes: TorchInductor failed on the dynamic graph here when the second bucket
    # came (an invalid value range in torch 2.13).
    module.compile(dynamic=False)


def warmup_cosine(step: int, *, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr`` at ``total_steps``.

    A pure function of the step, so a resumed run needs no scheduler state.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def trim_log(run_dir: Path, step: int) -> None:
    """Drop log lines past ``step``: a killed run logged steps its resumption will redo."""
    log = run_dir / LOG_NAME
    if not log.exists():
        return
    kept = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by the kill
    log.write_text("".join(line + "\n" for line in kept))


class StopSignals:
    """Turns the first SIGINT or SIGTERM into a request to stop at the next step boundary.

    Stopping between steps keeps the saved step count, weights and optimizer in agreement, so
    the resumed run is exact; a second signal acts at once (the periodic checkpoint remains).
    """

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self._SIGNALS:
                # A signal the parent chose to ignore (nohup, `cmd &` in a script) stays ignored.
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._request)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

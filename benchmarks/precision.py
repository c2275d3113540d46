"""bfloat16 against float32 on this machine: training steps (``--precision bf16``) and generation
(``--dtype bfloat16``), as ratios of times measured in this process.

    python benchmarks/precision.py             # the table, ~1 min on 2 cores
    python benchmarks/precision.py --threads 1 # steadier on a machine other jobs are loading

Whether bf16 pays on a CPU depends on the CPU: with bf16 matrix units (Intel AMX) a bf16 matmul
runs several times faster than fp32, without them many times slower. The first row is that
matmul; then a training step of the shipped DiT's size and batch (32 clips of 16 x 64 x 64, 80
tokens each; AdamW, autocast as ``train dit --precision bf16`` runs it), a VAE training step
(4 clips of 17 x 64 x 64 through the shipped VAE's architecture), and the shipped model's
sampling of one 16-frame clip with its weights cast (``pipe.to(torch.bfloat16)``). Each row
alternates the two dtypes round by round and reports medians: "speed-up" above 1 means bf16 is
faster here. Random weights except for sampling (the shipped model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from _dit_step import dit_training_step
from _timing import time_interleaved, timing_arguments

from kinetoscope.pipelines.text_to_video import KinetoscopePipeline, default_model_dir
from kinetoscope.training.run import autocast
from kinetoscope.vae.model import CausalVideoVAE

CPU = torch.device("cpu")


def matmul(dtype: torch.dtype) -> Callable[[], None]:
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    return lambda: a @ b


def dit_step(precision: str) -> Callable[[], None]:
    return dit_training_step(precision)


def vae_step(precision: str) -> Callable[[], None]:
    vae = CausalVideoVAE.from_pretrained(default_model_dir() / "vae")
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-6)
    x = torch.rand(4, 3, 17, 64, 64) * 2 - 1

    def step() -> None:
        with autocast(CPU, precision):
            loss = (vae.decode(vae.encode(x).mode(), 17).float() - x).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def sampling(dtype: torch.dtype) -> Callable[[], None]:
    pipe = KinetoscopePipeline.from_pretrained(torch_dtype=dtype)
    return lambda: pipe("a red ball moving left", seed=0)


ROWS = [
    ("2048^2 matmul", lambda: matmul(torch.float32), lambda: matmul(torch.bfloat16)),
    ("DiT training step (shipped size, 32 clips)", lambda: dit_step("fp32"), lambda: dit_step("bf16")),
    ("VAE training step (4 clips of 17x64x64)", lambda: vae_step("fp32"), lambda: vae_step("bf16")),
    ("sampling a 16-frame clip (shipped model)", lambda: sampling(torch.float32), lambda: sampling(torch.bfloat16)),
]


def main() -> None:
    args = timing_arguments(__doc__)
    print(f"{'work':<46}{'fp32 s':>10}{'bf16 s':>10}{'speed-up':>10}")
    for name, make_fp32, make_bf16 in ROWS:
        times = time_interleaved({"fp32": make_fp32(), "bf16": make_bf16()}, 1, args.rounds)
        fp32, bf16 = times["fp32"][0], times["bf16"][0]
        print(f"{name:<46}{fp32:>10.3f}{bf16:>10.3f}{fp32 / bf16:>10.2f}")


if __name__ == "__main__":
    main()

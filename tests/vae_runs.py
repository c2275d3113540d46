"""The small VAE runs the VAE training tests share: a tiny model on small clips, one thread, and
the train vae command run the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kinetoscope.data.vae_mix import ClipBucket, VAEMixConfig
from kinetoscope.training.losses import LossConfig, vae_loss
from kinetoscope.training.vae import VAETrainConfig
from kinetoscope.vae.config import tiny
from kinetoscope.vae.model import CausalVideoVAE

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"
# Small clips keep a tiny-model step near 0.1 s on a CPU; one image bucket exercises the 1-frame path.
SMALL_BUCKETS = (ClipBucket(5, 32, 32, 3.0), ClipBucket(1, 32, 32, 1.0))
TINY_ARGS = ("--preset", "tiny", "--threads", "1", "--batch-size", "1", "--clip-size", "5x32x32", "--clip-size", "1x32x32", "--no-progress")
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # as one_thread, for the CLI's processes


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a shared CPU two OpenMP threads
    spinning against other processes made these tests 5-10x slower (measured: 7 s vs 53 s)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_config(steps: int, **overrides) -> VAETrainConfig:
    mix = VAEMixConfig(buckets=SMALL_BUCKETS, batch_size=1, seed=0, shapes_weight=1.0, photos_weight=1.0, lavfi_weight=0.0)
    settings = dict(model=tiny(), mix=mix, steps=steps, lr=3e-3, warmup_steps=3, checkpoint_every=4, stats_clips=4)
    return VAETrainConfig(**(settings | overrides), device="cpu")


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KINETOSCOPE), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ONE_THREAD_ENV
    )


def eval_loss(model: CausalVideoVAE, clips: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        out = model(clips, sample_posterior=False)
        loss, _ = vae_loss(out.sample, clips, torch.tensor(0.0), LossConfig())
    model.train()
    return float(loss)

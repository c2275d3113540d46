"""The tiny "debug" diffusion transformers the transformer tests build, and their inputs."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.transformer import PRESETS, DiffusionTransformer, DiTConfig

MODES = ["cross", "joint"]


@pytest.fixture(autouse=True)
def one_thread():
    """Run single-threaded: the debug model's ops are too small to gain from threads, and on a
    busy 2-core machine every parallel op waits on its thread barrier (the overfit test took
    40 s with 2 threads against 2.4 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(mode: str = "cross", **overrides) -> DiTConfig:
    return DiTConfig(**{**PRESETS["debug"]().__dict__, "text_conditioning": mode, **overrides})


def model(mode: str = "cross", seed: int = 0, perturb: bool = True) -> DiffusionTransformer:
    """A debug model; ``perturb`` adds noise to every weight so zero-initialised layers do work."""
    torch.manual_seed(seed)
    net = DiffusionTransformer(config(mode))
    if perturb:
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def inputs(shape: tuple[int, ...], text_len: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    b = shape[0]
    latents = torch.randn(shape, generator=g)
    return latents, torch.rand(b, generator=g), torch.randn(b, text_len, 32, generator=g)


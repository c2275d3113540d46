"""Spacetime patches: cut a latent video into non-overlapping (pt, ph, pw) cubes, one token each.

Sora ("Video generation models as world simulators", 2024) turns a compressed latent video
into a sequence of spacetime patches; this module is that step and its exact inverse. Token
order is frame-major, then row, then column (``(t h w)``), and ``grid_positions`` lists the
(t, h, w) patch coordinate of each token in that same order, for 3D positional encodings.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor

PatchSize = tuple[int, int, int]
Grid = tuple[int, int, int]


def _check_patch_size(patch_size: PatchSize) -> PatchSize:
    if len(patch_size) != 3 or any(int(p) < 1 for p in patch_size):
        raise ValueError(f"patch_size must be three positive ints (pt, ph, pw), got {patch_size}")
    return int(patch_size[0]), int(patch_size[1]), int(patch_size[2])


def patch_grid(frames_hw: tuple[int, int, int], patch_size: PatchSize) -> Grid:
    """The (T, H, W) patch grid of a latent with (t, h, w) = ``frames_hw``.

    Raises ValueError naming the sizes when a side is not divisible by its patch size.
    """
    pt, ph, pw = _check_patch_size(patch_size)
    t, h, w = frames_hw
    if t % pt or h % ph or w % pw:
        raise ValueError(
            f"latent size (t, h, w) = ({t}, {h}, {w}) is not divisible by "
            f"patch_size (pt, ph, pw) = ({pt}, {ph}, {pw})"
        )
    return t // pt, h // ph, w // pw


def token_dim(channels: int, patch_size: PatchSize) -> int:
    """Width of one token: ``c * pt * ph * pw``."""
    return channels * math.prod(_check_patch_size(patch_size))


def patchify(latent: Tensor, patch_size: PatchSize) -> Tensor:
    """Cut latents into spacetime patch tokens.

    ``"b c t h w" -> "b (T H W) (c pt ph pw)"`` with ``T = t / pt`` etc. Raises ValueError
    naming the sizes when t, h or w is not divisible by the patch size.
    """
    if latent.ndim != 5:
        raise ValueError(f"patchify expects a 'b c t h w' tensor, got shape {tuple(latent.shape)}")
    pt, ph, pw = _check_patch_size(patch_size)
    patch_grid(tuple(latent.shape[2:]), (pt, ph, pw))
    return rearrange(
        latent, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw
    )


def unpatchify(tokens: Tensor, patch_size: PatchSize, grid: Grid, channels: int) -> Tensor:
    """Exact inverse of :func:`patchify`.

    ``"b (T H W) (c pt ph pw)" -> "b c t h w"``, where ``grid = (T, H, W)`` counts patches.
    """
    pt, ph, pw = _check_patch_size(patch_size)
    gt, gh, gw = grid
    if tokens.ndim != 3:
        raise ValueError(f"unpatchify expects 'b n d' tokens, got shape {tuple(tokens.shape)}")
    if tokens.shape[1] != gt * gh * gw or tokens.shape[2] != channels * pt * ph * pw:
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not match grid {tuple(grid)} with "
            f"channels={channels} and patch_size={(pt, ph, pw)} "
            f"(expected n={gt * gh * gw}, d={channels * pt * ph * pw})"
        )
    return rearrange(
        tokens,
        "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)",
        t=gt, h=gh, w=gw, c=channels, pt=pt, ph=ph, pw=pw,
    )


def grid_positions(grid: Grid, device: torch.device | str | None = None) -> Tensor:
    """``"n 3"`` int64 (t, h, w) patch coordinates of each token, in :func:`patchify` order."""
    axes = [torch.arange(int(size), device=device, dtype=torch.int64) for size in grid]
    coords = torch.meshgrid(*axes, indexing="ij")
    return rearrange(torch.stack(coords, dim=-1), "t h w three -> (t h w) three")

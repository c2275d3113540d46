"""Building blocks of the causal VAE: a per-position norm, a residual block, and the resamplers.

Every block takes ``"b c t h w"`` and the clip's :class:`CausalCache`, and is causal in time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kinetoscope.vae.causal_conv import CausalCache, CausalConv3d


class ChannelRMSNorm(nn.Module):
    """RMSNorm over channels, separately at every (frame, pixel).

    Not GroupNorm: its statistics over ``t h w`` would let a later frame change an earlier one
    (breaking causality and chunked == whole-clip), and would also mix in the padding added to
    reach a multiple of the compression. Normalising one position at a time has no such reach.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``"b c t h w"`` in and out."""
        scale = torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return x * scale * rearrange(self.weight, "c -> c 1 1 1")


class ResBlock(nn.Module):
    """Pre-norm residual block: two causal 3x3x3 convolutions, SiLU, 1x1x1 shortcut if widths differ."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = ChannelRMSNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3)
        self.norm2 = ChannelRMSNorm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3)
        # Zero init: each block starts as the identity, so a deep stack trains from the first step.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.shortcut = CausalConv3d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """``"b c t h w" -> "b o t h w"``."""
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        skip = x if self.shortcut is None else self.shortcut(x, cache)
        return skip + h


class Downsample(nn.Module):
    """Space-to-depth by 2 in ``t`` and/or ``h w``, then a pointwise projection (a strided patch embed).

    In time the clip's first frame is repeated once in front, so ``1 + 2k`` frames become
    ``1 + k``: latent frame 0 sees only frame 0, and later pairs never straddle it. Later chunks
    get no repeat; they must bring an even number of frames.
    """

    def __init__(self, in_channels: int, out_channels: int, *, spatial: bool, temporal: bool) -> None:
        super().__init__()
        self.ft = 2 if temporal else 1
        self.fs = 2 if spatial else 1
        self.proj = CausalConv3d(in_channels * self.ft * self.fs * self.fs, out_channels, 1)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """``"b c (t ft) (h fs) (w fs)" -> "b o t h w"`` (with the first-chunk frame repeat)."""
        if self.ft > 1 and cache.is_first(self):
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.ft - 1, -1, -1), x], dim=2)
        cache.put(self, None)
        if x.shape[2] % self.ft:
            raise ValueError(f"temporal downsampling needs an even frame count per chunk, got {x.shape[2]}")
        x = rearrange(
            x, "b c (t ft) (h fh) (w fw) -> b (c ft fh fw) t h w", ft=self.ft, fh=self.fs, fw=self.fs
        )
        return self.proj(x, cache)


class Upsample(nn.Module):
    """The mirror of :class:`Downsample`: a pointwise projection, then depth-to-space.

    In time, the first chunk's first output frame is the twin of the encoder's repeated frame and
    is dropped, so ``1 + k`` frames become ``1 + 2k``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, spatial: bool, temporal: bool) -> None:
        super().__init__()
        self.ft = 2 if temporal else 1
        self.fs = 2 if spatial else 1
        self.proj = CausalConv3d(in_channels, out_channels * self.ft * self.fs * self.fs, 1)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """``"b c t h w" -> "b o (t ft) (h fs) (w fs)"`` (less the first-chunk frame)."""
        pattern = "b (c ft fh fw) t h w -> b c (t ft) (h fh) (w fw)"
        x = rearrange(self.proj(x, cache), pattern, ft=self.ft, fh=self.fs, fw=self.fs)
        if self.ft > 1 and cache.is_first(self):
            x = x[:, :, self.ft - 1 :]
        cache.put(self, None)
        return x

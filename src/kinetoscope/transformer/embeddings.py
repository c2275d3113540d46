"""Embeddings of the model's conditioning inputs: the diffusion time and the text tokens.

The timestep path is adaLN-single (PixArt-alpha, Chen et al. 2023, §2.3; also Open-Sora and
LTX): one MLP shared by all blocks maps the time embedding to the six modulation vectors
(shift, scale, gate for attention and for the MLP), and each block adds its own learned
``6 x d`` table. DiT's per-block adaLN Linear layers would cost ``6 d^2`` parameters per block,
about a third of each block; the table costs ``6 d``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def timestep_sinusoid(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of ``1000 * t``: ``"..." -> "... dim"`` float32 (as DiT, after Vaswani et al.).

    Times in [0, 1] are scaled by 1000 so the ladder of frequencies, tuned for integer DDPM
    steps, resolves small differences in t (diffusers' flow models pass ``1000 * sigma`` too).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (1000.0 * t.float())[..., None] * freqs
    return torch.cat((args.cos(), args.sin()), dim=-1)


class TimestepConditioning(nn.Module):
    """Diffusion time -> (embedding ``temb``, shared modulation), per sample or per token.

    ``t`` is ``"b"`` or ``"b n"`` in [0, 1] (0 = data, 1 = noise; see
    :mod:`kinetoscope.diffusion.flow`). Returns ``temb`` ``"b 1 d"`` / ``"b n d"`` and the
    shared adaLN-single modulation ``"b 1 6 d"`` / ``"b n 6 d"``.
    """

    def __init__(self, width: int, freq_dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.modulation = nn.Linear(width, 6 * width)

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """See the class docstring."""
        if t.ndim == 1:
            values, index = t, None
        else:
            # Per-token times take only a few distinct values (given frames at 0, the rest at
            # the sample's t), so embed each distinct value once and gather: this keeps the
            # 6 d^2 modulation Linear out of the per-token cost.
            values, index = torch.unique(t, return_inverse=True)
        dtype = self.modulation.weight.dtype
        temb = self.mlp(timestep_sinusoid(values, self.freq_dim).to(dtype))                        # k d
        modulation = self.modulation(F.silu(temb))                                             # k (6 d)
        if index is None:
            temb, modulation = temb[:, None], modulation[:, None]                     # b 1 d, b 1 (6 d)
        else:
            temb, modulation = temb[index], modulation[index]                         # b n d, b n (6 d)
        return temb, rearrange(modulation, "b n (six d) -> b n six d", six=6)


class TextProjection(nn.Module):
    """Text encoder tokens ``"b l d_text" -> "b l d"`` (PixArt-alpha's caption projection)."""

    def __init__(self, text_dim: int, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(text_dim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, text: Tensor) -> Tensor:
        """See the class docstring."""
        return self.fc2(F.gelu(self.fc1(text), approximate="tanh"))

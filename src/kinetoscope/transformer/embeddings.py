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

    def forward(self, t: Tensor, extra: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """See the class docstring; ``extra`` (``"b 1 d"`` or ``"b n d"``, e.g. pooled text) is
        added to the time embedding before the modulation is computed from it."""
        if t.ndim == 1:
            values, index = t, None
        elif torch.compiler.is_compiling():
            # unique() has a data-dependent size, which would break torch.compile's graph and
            # recompile it for every count: compiled, every token gets its own row.
            values, index = t.reshape(-1), torch.arange(t.numel(), device=t.device).reshape(t.shape)
        else:
            # Per-token times take only a few distinct values (given frames at 0, the rest at
            # the sample's t), so embed each distinct value once and gather: this keeps the
            # 6 d^2 modulation Linear out of the per-token cost.
            values, index = torch.unique(t, return_inverse=True)
        dtype = self.modulation.weight.dtype
        temb = self.mlp(timestep_sinusoid(values, self.freq_dim).to(dtype))                        # k d
        if extra is not None:
            temb = temb[:, None] if index is None else temb[index]                                # b n|1 d
            return self._modulate_rows(temb + extra)
        modulation = self.modulation(F.silu(temb))                                             # k (6 d)
        if index is None:
            temb, modulation = temb[:, None], modulation[:, None]                     # b 1 d, b 1 (6 d)
        else:
            temb, modulation = temb[index], modulation[index]                         # b n d, b n (6 d)
        return temb, rearrange(modulation, "b n (six d) -> b n six d", six=6)

    def _modulate_rows(self, temb: Tensor) -> tuple[Tensor, Tensor]:
        """``temb`` ``"b n|1 d"`` (time plus extra) -> itself and its modulation ``"b n|1 6 d"``."""
        # A clip's tokens share one (time, text) pair apart from given frames, so the rows of
        # temb take a few distinct values: run the 6 d^2 Linear once per distinct row. unique()
        # is not differentiable, so it only finds each row's first occurrence to gather from.
        rows = temb.reshape(-1, temb.shape[-1])                                                # (b n) d
        if torch.compiler.is_compiling():  # as in forward: no unique() inside a compiled graph
            return temb, self.modulation(F.silu(rows)).reshape(*temb.shape[:2], 6, -1)
        _, index = torch.unique(rows.detach(), dim=0, return_inverse=True)
        order = torch.arange(len(rows), device=rows.device)
        first = torch.full((int(index.max()) + 1,), len(rows), device=rows.device).scatter_reduce(
            0, index, order, "amin"
        )
        modulation = self.modulation(F.silu(rows[first]))[index]                         # (b n) (6 d)
        modulation = modulation.reshape(*temb.shape[:2], 6, -1)                             # b n|1 6 d
        return temb, modulation


def pool_text(text: Tensor, mask: Tensor | None, text_segment_ids: Tensor | None, segment_ids: Tensor | None) -> Tensor:
    """Mean text state of each clip, ``"b 1 d_text"`` (one clip per row) or ``"b n d_text"`` per token.

    ``mask`` ``"b l"`` marks real text tokens (None: all). In packed rows, ``text_segment_ids``
    ``"b l"`` and ``segment_ids`` ``"b n"`` say which clip each text and video token belongs
    to (-1 for padding); each video token gets its own clip's mean.
    """
    keep = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device) if mask is None else mask.bool()
    if text_segment_ids is None or segment_ids is None:
        weights = keep.to(text.dtype)[..., None]                                                # b l 1
        return (text * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)
    clips = int(max(text_segment_ids.max(), segment_ids.max())) + 1
    onehot = F.one_hot(text_segment_ids.clamp_min(0), clips).to(text.dtype)                     # b l s
    onehot = onehot * (keep & (text_segment_ids >= 0)).to(text.dtype)[..., None]
    pooled = torch.einsum("bls,bld->bsd", onehot, text) / onehot.sum(1)[..., None].clamp_min(1.0)  # b s d
    index = segment_ids.clamp_min(0)[..., None].expand(-1, -1, text.shape[-1])                  # b n d
    return pooled.gather(1, index)                                                           # b n d


class PooledTextProjection(nn.Module):
    """Pooled text ``"... d_text" -> "... d"``, added to the time embedding; the last layer
    starts at zero, so a fresh model is unchanged by it."""

    def __init__(self, text_dim: int, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(text_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, pooled: Tensor) -> Tensor:
        """See the class docstring."""
        return self.mlp(pooled)


class TextProjection(nn.Module):
    """Text encoder tokens ``"b l d_text" -> "b l d"`` (PixArt-alpha's caption projection)."""

    def __init__(self, text_dim: int, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(text_dim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, text: Tensor) -> Tensor:
        """See the class docstring."""
        return self.fc2(F.gelu(self.fc1(text), approximate="tanh"))

"""Running the encoder or decoder over a clip chunk by chunk, so memory does not grow with its length.

The chunks follow the causal grid: with a chunk of F pixel frames (F a multiple of the temporal
compression T), the encoder takes ``1 + F`` frames first and ``F`` after, and the decoder
``1 + F / T`` latent frames first and ``F / T`` after. Each chunk then maps onto whole latent
frames, and one :class:`CausalCache` carries every causal layer's last frames across the
boundaries, so the result equals the whole-clip result (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from kinetoscope.vae.causal_conv import CausalCache

ChunkFn = Callable[[torch.Tensor, CausalCache], torch.Tensor]


def chunk_bounds(total: int, first: int, rest: int) -> list[tuple[int, int]]:
    """``[start, stop)`` frame ranges: ``first`` frames, then ``rest`` at a time, the last one short."""
    if first < 1 or rest < 1:
        raise ValueError(f"chunk lengths must be positive, got first={first}, rest={rest}")
    bounds, start, size = [], 0, first
    while start < total:
        bounds.append((start, min(start + size, total)))
        start, size = start + size, rest
    return bounds


def iter_chunks(fn: ChunkFn, x: torch.Tensor, first: int, rest: int) -> Iterator[torch.Tensor]:
    """Yield ``fn`` applied to successive chunks of ``"b c t h w"`` along t, with one shared cache."""
    cache = CausalCache()
    for start, stop in chunk_bounds(x.shape[2], first, rest):
        yield fn(x[:, :, start:stop], cache)


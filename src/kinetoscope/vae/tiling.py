"""Coding frames larger than a tile, tile by tile, so memory does not grow with the frame size.

The latent grid is cut into overlapping tiles, all full size and evenly spread from edge to edge.
Each tile is encoded or decoded on its own,
and the overlaps are cross-faded with linear ramps, as diffusers' tiled VAEs do. A convolution
sees zeros at a tile's inner edge where the whole frame would show it the neighbouring pixels,
so tiled results differ a little from whole-frame ones near the seams, which the cross-fade
hides; frames no larger than one tile are coded whole, exactly as without tiling. Tiling composes
with temporal chunking: each tile keeps its own causal cache from one chunk to the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from kinetoscope.vae.causal_conv import CausalCache
from kinetoscope.vae.chunking import ChunkFn, chunk_bounds

Span = tuple[int, int]


def tile_spans(size: int, tile: int, overlap: int) -> list[Span]:
    """``[start, stop)`` ranges of length ``tile`` covering ``range(size)``, as few as overlap each
    other by at least ``overlap``, evenly spread; one range of the whole ``size`` when it fits."""
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got overlap={overlap}, tile={tile}")
    if size <= tile:
        return [(0, size)]
    count = math.ceil((size - overlap) / (tile - overlap))
    starts = [round(i * (size - tile) / (count - 1)) for i in range(count)]
    return [(start, start + tile) for start in starts]


def ramps(spans: list[Span], scale: int) -> list[torch.Tensor]:
    """Per span, its blending weight along the axis at ``scale`` output positions per grid
    position: 1 inside, rising over the overlap with the span before and falling over the one
    after, so two overlapping weights sum to 1 at every position they share."""

    def rise(length: int) -> torch.Tensor:
        return (torch.arange(length) + 0.5) / length

    weights = []
    for i, (start, stop) in enumerate(spans):
        weight = torch.ones((stop - start) * scale)
        if i > 0 and (before := (spans[i - 1][1] - start) * scale) > 0:
            weight[:before] = torch.minimum(weight[:before], rise(before))
        if i + 1 < len(spans) and (after := (stop - spans[i + 1][0]) * scale) > 0:
            weight[-after:] = torch.minimum(weight[-after:], rise(after).flip(0))
        weights.append(weight)
    return weights


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a latent grid of ``height x width`` positions."""

    rows: list[Span]
    cols: list[Span]

    @classmethod
    def over(cls, height: int, width: int, tile: int, overlap: int) -> TileGrid:
        return cls(tile_spans(height, tile, overlap), tile_spans(width, tile, overlap))

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def run(self, fn: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor, scale_in: int, scale_out: int) -> torch.Tensor:
        """``fn(tile of x, tile index)`` per tile, cross-faded into one ``"b c t H W"`` output.

        ``x`` has ``scale_in`` positions per grid position along h and w, ``fn``'s output
        ``scale_out`` (the encoder: S in, 1 out; the decoder: 1 in, S out).
        """
        row_weights, col_weights = ramps(self.rows, scale_out), ramps(self.cols, scale_out)
        out = weight_sum = None
        index = 0
        for (top, bottom), row_weight in zip(self.rows, row_weights):
            for (left, right), col_weight in zip(self.cols, col_weights):
                y = fn(x[..., top * scale_in : bottom * scale_in, left * scale_in : right * scale_in], index)
                index += 1
                if out is None:
                    height, width = self.rows[-1][1] * scale_out, self.cols[-1][1] * scale_out
                    out = y.new_zeros(*y.shape[:3], height, width)
                    weight_sum = y.new_zeros(height, width)
                weight = torch.outer(row_weight, col_weight).to(y)
                rows = slice(top * scale_out, bottom * scale_out)
                cols = slice(left * scale_out, right * scale_out)
                out[..., rows, cols] += y * weight
                weight_sum[rows, cols] += weight
        return out / weight_sum


def iter_tiled_chunks(
    fn: ChunkFn, x: torch.Tensor, grid: TileGrid, first: int, rest: int, scale_in: int, scale_out: int
) -> Iterator[torch.Tensor]:
    """As :func:`kinetoscope.vae.chunking.iter_chunks`, each chunk coded tile by tile with a cache per tile."""
    caches = [CausalCache() for _ in range(len(grid))]
    for start, stop in chunk_bounds(x.shape[2], first, rest):
        chunk = x[:, :, start:stop]
        yield grid.run(lambda tile, i: fn(tile, caches[i]), chunk, scale_in, scale_out)

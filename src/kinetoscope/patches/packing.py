"""Patch n' Pack (NaViT, Dehghani et al. 2023): clips of any duration, size and aspect ratio
share batch rows instead of being resized or cropped to one shape.

Each clip is patchified and its tokens are laid end to end in a row; rows are padded at the
end. ``segment_ids`` say which clip of its row a token belongs to (-1 for padding), and
:func:`attention_mask` turns them into a block-diagonal mask so clips never attend to each
other. Positions restart at (0, 0, 0) for every clip, so where a clip sits in its row does not
change what the model sees. :func:`pack_sequences` lays out per-clip text the same way, row for
row, so cross-attention can match each clip's video tokens to that clip's text only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kinetoscope.patches.patchify import (
    Grid,
    PatchSize,
    grid_positions,
    patch_grid,
    patchify,
    token_dim,
    unpatchify,
)

PADDING = -1
"""The segment id of padding tokens."""


@dataclass(frozen=True)
class ClipSlot:
    """Where one clip's tokens lie in a :class:`PackedBatch`."""

    row: int
    start: int
    length: int
    grid: Grid  # (T, H, W) in patches
    channels: int
    index: int  # position of the clip in the list given to pack()
    segment: int  # the clip's segment id within its row (0, 1, ... in row order)


@dataclass
class PackedBatch:
    """Several clips per row of tokens.

    ``tokens`` is ``"b n d"``; ``positions`` is ``"b n 3"`` int64 (t, h, w) per token, each clip
    starting at 0 (padding gets 0); ``segment_ids`` is ``"b n"`` int64 with -1 for padding.
    """

    tokens: Tensor
    positions: Tensor
    segment_ids: Tensor
    clips: list[ClipSlot]

    @property
    def valid(self) -> Tensor:
        """``"b n"`` bool: True for real tokens, False for padding (e.g. a loss mask)."""
        return self.segment_ids != PADDING


@dataclass
class PackedSequences:
    """Per-clip sequences (e.g. text embeddings) packed into rows aligned with a PackedBatch.

    ``tokens`` is ``"b l d"``, ``segment_ids`` is ``"b l"`` int64 holding the segment id of the
    clip each element belongs to in the video row (-1 for padding), ``positions`` is ``"b l"``
    int64, each sequence starting at 0.
    """

    tokens: Tensor
    segment_ids: Tensor
    positions: Tensor

    @property
    def valid(self) -> Tensor:
        """``"b l"`` bool: True for real elements, False for padding."""
        return self.segment_ids != PADDING


def _first_fit(lengths: list[int], max_tokens: int | None) -> list[list[int]]:
    """Clip indices per row: largest first, each into the first row it fits in."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    if max_tokens is None:
        return [order]
    rows: list[list[int]] = []
    fill: list[int] = []
    for i in order:
        if lengths[i] > max_tokens:
            raise ValueError(
                f"clip {i} has {lengths[i]} tokens, more than max_tokens={max_tokens}"
            )
        for r, used in enumerate(fill):
            if used + lengths[i] <= max_tokens:
                rows[r].append(i)
                fill[r] += lengths[i]
                break
        else:
            rows.append([i])
            fill.append(lengths[i])
    return rows


def pack(latents: list[Tensor], patch_size: PatchSize, max_tokens: int | None = None) -> PackedBatch:
    """Patchify ``"c t h w"`` latents of any sizes and pack them into rows.

    Rows hold at most ``max_tokens`` tokens (greedy first-fit, largest clip first); with
    ``max_tokens=None`` every clip goes into one row. Rows are padded to the longest row.
    All latents must have the same channel count (tokens share one width).
    """
    if not latents:
        raise ValueError("pack needs at least one latent")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be positive or None, got {max_tokens}")
    channels = latents[0].shape[0]
    grids: list[Grid] = []
    for i, latent in enumerate(latents):
        if latent.ndim != 4:
            raise ValueError(f"latent {i} must be 'c t h w', got shape {tuple(latent.shape)}")
        if latent.shape[0] != channels:
            raise ValueError(
                f"latent {i} has {latent.shape[0]} channels, latent 0 has {channels}"
            )
        grids.append(patch_grid(tuple(latent.shape[1:]), patch_size))
    lengths = [g[0] * g[1] * g[2] for g in grids]
    rows = _first_fit(lengths, max_tokens)

    width = max(sum(lengths[i] for i in row) for row in rows)
    ref = latents[0]
    tokens = ref.new_zeros(len(rows), width, token_dim(channels, patch_size))
    positions = torch.zeros(len(rows), width, 3, dtype=torch.int64, device=ref.device)
    segment_ids = torch.full((len(rows), width), PADDING, dtype=torch.int64, device=ref.device)
    clips: list[ClipSlot] = []
    for r, row in enumerate(rows):
        start = 0
        for segment, i in enumerate(row):
            end = start + lengths[i]
            tokens[r, start:end] = patchify(latents[i][None], patch_size)[0]
            positions[r, start:end] = grid_positions(grids[i], device=ref.device)
            segment_ids[r, start:end] = segment
            clips.append(ClipSlot(r, start, lengths[i], grids[i], channels, i, segment))
            start = end
    clips.sort(key=lambda slot: slot.index)
    return PackedBatch(tokens, positions, segment_ids, clips)


def unpack(tokens: Tensor, batch: PackedBatch, patch_size: PatchSize) -> list[Tensor]:
    """Exact inverse of :func:`pack`: ``"b n d"`` tokens back to ``"c t h w"`` clips, in input order.

    The channel count is read from the token width, so model outputs with another channel
    count than the input (``d = c_out * pt * ph * pw``) unpack too.
    """
    volume = patch_size[0] * patch_size[1] * patch_size[2]
    if tokens.ndim != 3 or tokens.shape[:2] != batch.segment_ids.shape:
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not match the packed batch's "
            f"'b n' = {tuple(batch.segment_ids.shape)}"
        )
    if tokens.shape[-1] % volume:
        raise ValueError(f"token width {tokens.shape[-1]} is not a multiple of patch volume {volume}")
    channels = tokens.shape[-1] // volume
    out: list[Tensor] = [tokens.new_empty(0)] * len(batch.clips)
    for slot in batch.clips:
        piece = tokens[slot.row, slot.start : slot.start + slot.length]
        out[slot.index] = unpatchify(piece[None], patch_size, slot.grid, channels)[0]
    return out


def attention_mask(q_segments: Tensor, k_segments: Tensor) -> Tensor:
    """Block-diagonal attention mask from segment ids, for ``scaled_dot_product_attention``.

    ``"b nq", "b nk" -> "b 1 nq nk"`` bool, True where query and key belong to the same clip
    and neither is padding. Self-attention passes ``segment_ids`` twice; cross-attention to
    packed text passes the text's segment ids as keys. A padding query attends to every key:
    an all-False row makes SDPA return NaN on some backends, and padding outputs are discarded
    anyway. A real query whose clip has no key at all still gets an all-False row, which is
    why :func:`pack_sequences` refuses empty sequences.
    """
    if q_segments.ndim != 2 or k_segments.ndim != 2 or q_segments.shape[0] != k_segments.shape[0]:
        raise ValueError(
            f"segment ids must be 'b nq' and 'b nk' with one b, got "
            f"{tuple(q_segments.shape)} and {tuple(k_segments.shape)}"
        )
    q = q_segments[:, :, None]
    k = k_segments[:, None, :]
    same = (q == k) & (k != PADDING)
    return (same | (q == PADDING))[:, None]


def pack_sequences(seqs: list[Tensor], batch: PackedBatch) -> PackedSequences:
    """Pack one ``"l d"`` sequence per clip into rows aligned with ``batch``.

    ``seqs[i]`` belongs to clip ``i`` of the list given to :func:`pack`; it lands in that clip's
    row with that clip's segment id, so ``attention_mask(batch.segment_ids, out.segment_ids)``
    lets each clip's video tokens cross-attend to its own text only. Sequences may have
    different lengths; rows are padded at the end. Each needs at least one element (use the
    encoded empty prompt, not an empty tensor, for the unconditional branch).
    """
    if len(seqs) != len(batch.clips):
        raise ValueError(f"got {len(seqs)} sequences for {len(batch.clips)} packed clips")
    for i, seq in enumerate(seqs):
        if seq.ndim != 2 or seq.shape[0] == 0:
            raise ValueError(f"sequence {i} must be a non-empty 'l d' tensor, got {tuple(seq.shape)}")
        if seq.shape[1] != seqs[0].shape[1]:
            raise ValueError(f"sequence {i} has width {seq.shape[1]}, sequence 0 has {seqs[0].shape[1]}")
    rows = batch.tokens.shape[0]
    fill = [0] * rows
    for slot in batch.clips:
        fill[slot.row] += seqs[slot.index].shape[0]
    ref = seqs[0]
    tokens = ref.new_zeros(rows, max(fill), ref.shape[1])
    segment_ids = torch.full((rows, max(fill)), PADDING, dtype=torch.int64, device=ref.device)
    positions = torch.zeros(rows, max(fill), dtype=torch.int64, device=ref.device)
    start = [0] * rows
    for slot in sorted(batch.clips, key=lambda s: (s.row, s.segment)):
        seq = seqs[slot.index]
        a, b = start[slot.row], start[slot.row] + seq.shape[0]
        tokens[slot.row, a:b] = seq
        segment_ids[slot.row, a:b] = slot.segment
        positions[slot.row, a:b] = torch.arange(seq.shape[0], device=ref.device)
        start[slot.row] = b
    return PackedSequences(tokens, segment_ids, positions)


def per_token(values: Tensor, batch: PackedBatch, pad_value: float = 0.0) -> Tensor:
    """Spread one value per clip over that clip's tokens: ``"k ..." -> "b n ..."``.

    ``values[i]`` belongs to clip ``i`` of the list given to :func:`pack` (e.g. its diffusion
    timestep); padding tokens get ``pad_value``.
    """
    if values.shape[0] != len(batch.clips):
        raise ValueError(f"got {values.shape[0]} values for {len(batch.clips)} packed clips")
    out = values.new_full((*batch.segment_ids.shape, *values.shape[1:]), pad_value)
    for slot in batch.clips:
        out[slot.row, slot.start : slot.start + slot.length] = values[slot.index]
    return out

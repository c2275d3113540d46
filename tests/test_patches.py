"""The patcher: exact round trips, positions in token order, Patch n' Pack and its masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kinetoscope.patches import (
    PADDING,
    attention_mask,
    grid_positions,
    pack,
    pack_sequences,
    patchify,
    per_token,
    unpack,
    unpatchify,
)

PATCH_CASES = [
    ((1, 1, 1), (3, 2, 5)),
    ((1, 2, 2), (4, 3, 2)),
    ((2, 2, 2), (2, 2, 3)),
    ((2, 1, 4), (1, 5, 2)),
    ((4, 8, 8), (2, 1, 1)),
]


def _clips(seed: int = 0) -> list[torch.Tensor]:
    """Latents of different durations, sizes and aspect ratios (1:1, 16:9, 9:16, one image)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 4, 8, 8), (4, 2, 8, 14), (4, 2, 14, 8), (4, 1, 8, 8), (4, 8, 4, 4), (4, 3, 2, 6)]
    return [torch.randn(shape, generator=g) for shape in shapes]


@pytest.mark.parametrize(("patch", "grid"), PATCH_CASES)
def test_patchify_round_trip_is_exact(patch, grid):
    c = 3
    x = torch.randn(2, c, grid[0] * patch[0], grid[1] * patch[1], grid[2] * patch[2])
    tokens = patchify(x, patch)
    assert tokens.shape == (2, grid[0] * grid[1] * grid[2], c * patch[0] * patch[1] * patch[2])
    assert torch.equal(unpatchify(tokens, patch, grid, c), x)


def test_patchify_rejects_indivisible_sizes_naming_them():
    with pytest.raises(ValueError, match=r"\(3, 4, 6\).*\(2, 2, 2\)"):
        patchify(torch.zeros(1, 2, 3, 4, 6), (2, 2, 2))


@pytest.mark.parametrize(("patch", "grid"), PATCH_CASES)
def test_positions_name_the_patch_each_token_came_from(patch, grid):
    pt, ph, pw = patch
    x = torch.randn(1, 2, grid[0] * pt, grid[1] * ph, grid[2] * pw)
    tokens = patchify(x, patch)[0]
    positions = grid_positions(grid)
    assert positions.dtype == torch.int64 and positions.shape == (tokens.shape[0], 3)
    assert len({tuple(p) for p in positions.tolist()}) == tokens.shape[0]
    for i, (t, h, w) in enumerate(positions.tolist()):
        cube = x[0, :, t * pt : (t + 1) * pt, h * ph : (h + 1) * ph, w * pw : (w + 1) * pw]
        assert torch.equal(tokens[i], cube.reshape(-1))


@pytest.mark.parametrize("max_tokens", [None, 64, 100, 300])
def test_pack_unpack_round_trip_is_exact(max_tokens):
    clips = _clips()
    patch = (1, 2, 2)
    batch = pack(clips, patch, max_tokens=max_tokens)
    if max_tokens is None:
        assert batch.tokens.shape[0] == 1
    else:
        assert batch.tokens.shape[1] <= max_tokens
    assert int(batch.valid.sum()) == sum(c.shape[1] * c.shape[2] * c.shape[3] // 4 for c in clips)
    assert torch.all(batch.tokens[~batch.valid] == 0)
    out = unpack(batch.tokens, batch, patch)
    assert len(out) == len(clips)
    for original, restored in zip(clips, out):
        assert torch.equal(original, restored)


def test_pack_positions_and_segments_follow_each_clip():
    clips = _clips(1)
    batch = pack(clips, (1, 2, 2), max_tokens=80)
    assert batch.positions.shape == (*batch.segment_ids.shape, 3)
    for slot in batch.clips:
        span = slice(slot.start, slot.start + slot.length)
        assert torch.equal(batch.positions[slot.row, span], grid_positions(slot.grid))
        assert torch.all(batch.segment_ids[slot.row, span] == slot.segment)
        one = patchify(clips[slot.index][None], (1, 2, 2))[0]
        assert torch.equal(batch.tokens[slot.row, span], one)
    # Padding only at the end of each row.
    for row in batch.segment_ids:
        real = (row != PADDING).long()
        assert torch.all(real[:-1] >= real[1:])


def test_first_fit_places_largest_first_into_the_first_row_with_room():
    # Token counts 4, 8, 3, 5 with room for 10: 8 -> row 0; 5 -> row 1; 4 -> row 1; 3 -> row 2.
    clips = [torch.zeros(1, 1, 1, n) for n in (4, 8, 3, 5)]
    batch = pack(clips, (1, 1, 1), max_tokens=10)
    rows = {slot.index: (slot.row, slot.start) for slot in batch.clips}
    assert rows == {1: (0, 0), 3: (1, 0), 0: (1, 5), 2: (2, 0)}
    with pytest.raises(ValueError, match="max_tokens=7"):
        pack(clips, (1, 1, 1), max_tokens=7)


def test_pack_rejects_mixed_channel_counts():
    with pytest.raises(ValueError, match="channels"):
        pack([torch.zeros(4, 1, 2, 2), torch.zeros(3, 1, 2, 2)], (1, 1, 1))


def test_moving_a_clip_in_its_row_does_not_change_its_positions_or_tokens():
    small = torch.randn(4, 2, 4, 6)
    big = torch.randn(4, 4, 8, 8)
    alone = pack([small], (1, 2, 2))
    behind = pack([small, big], (1, 2, 2))  # largest first, so `small` starts after `big`
    a, b = alone.clips[0], behind.clips[0]
    assert a.start == 0 and b.start == big.shape[1] * 4 * 4
    span_a = slice(a.start, a.start + a.length)
    span_b = slice(b.start, b.start + b.length)
    assert torch.equal(alone.positions[0, span_a], behind.positions[0, span_b])
    assert torch.equal(alone.tokens[0, span_a], behind.tokens[0, span_b])


def test_self_attention_mask_is_block_diagonal():
    batch = pack(_clips(2), (1, 2, 2), max_tokens=120)
    mask = attention_mask(batch.segment_ids, batch.segment_ids)
    rows, n = batch.segment_ids.shape
    assert mask.shape == (rows, 1, n, n) and mask.dtype == torch.bool
    seg = batch.segment_ids
    real_q = (seg != PADDING)[:, :, None]
    expected = (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] != PADDING)
    assert torch.equal(mask[:, 0] & real_q, expected & real_q)
    assert torch.all(mask[:, 0][~batch.valid])  # padding queries see everything, never an empty row
    assert torch.all(mask.any(dim=-1))


def test_packed_attention_equals_attending_each_clip_alone():
    torch.manual_seed(0)
    clips = [torch.randn(8, 2, 4, 6), torch.randn(8, 1, 6, 4), torch.randn(8, 3, 2, 2)]
    patch = (1, 2, 2)
    batch = pack(clips, patch, max_tokens=30)
    texts = [torch.randn(length, 32) for length in (5, 2, 7)]
    text = pack_sequences(texts, batch)
    q = batch.tokens[:, None]  # one head, d = 32
    self_out = F.scaled_dot_product_attention(
        q, q, q, attn_mask=attention_mask(batch.segment_ids, batch.segment_ids)
    )[:, 0]
    kv = text.tokens[:, None]
    cross_out = F.scaled_dot_product_attention(
        q, kv, kv, attn_mask=attention_mask(batch.segment_ids, text.segment_ids)
    )[:, 0]
    assert torch.isfinite(self_out).all() and torch.isfinite(cross_out).all()
    for slot in batch.clips:
        x = patchify(clips[slot.index][None], patch)[:, None]
        ref_self = F.scaled_dot_product_attention(x, x, x)[:, 0]
        t = texts[slot.index][None, None]
        ref_cross = F.scaled_dot_product_attention(x, t, t)[:, 0]
        span = slice(slot.start, slot.start + slot.length)
        torch.testing.assert_close(self_out[slot.row, span][None], ref_self)
        torch.testing.assert_close(cross_out[slot.row, span][None], ref_cross)


def test_pack_sequences_aligns_each_clips_text_with_its_row_and_segment():
    clips = _clips(3)
    batch = pack(clips, (1, 2, 2), max_tokens=100)
    texts = [torch.randn(3 + i, 16) for i in range(len(clips))]
    text = pack_sequences(texts, batch)
    assert text.tokens.shape[0] == batch.tokens.shape[0]
    for slot in batch.clips:
        where = text.segment_ids[slot.row] == slot.segment
        assert torch.equal(text.tokens[slot.row][where], texts[slot.index])
        assert torch.equal(text.positions[slot.row][where], torch.arange(len(texts[slot.index])))
    assert torch.all(text.tokens[~text.valid] == 0)
    with pytest.raises(ValueError, match="non-empty"):
        pack_sequences([torch.zeros(0, 16)] + texts[1:], batch)


def test_per_token_spreads_clip_values_over_their_tokens():
    clips = _clips(4)
    batch = pack(clips, (1, 2, 2), max_tokens=100)
    values = torch.arange(len(clips), dtype=torch.float32) + 1.0
    spread = per_token(values, batch, pad_value=-5.0)
    assert spread.shape == batch.segment_ids.shape
    assert torch.all(spread[~batch.valid] == -5.0)
    for slot in batch.clips:
        assert torch.all(spread[slot.row, slot.start : slot.start + slot.length] == values[slot.index])


def test_patcher_depends_on_torch_and_einops_only():
    import ast
    import sys
    from pathlib import Path

    import kinetoscope.patches as pkg

    allowed = {"torch", "einops", "kinetoscope", "__future__"} | set(sys.stdlib_module_names)
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
                if name.startswith("kinetoscope"):
                    assert name.startswith("kinetoscope.patches"), f"{path.name} imports {name}"

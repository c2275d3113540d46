"""Given pixel frames on the latent grid: groups, given / partly given latent frames, the canvas,
causal encoding of a prefix, and the window arithmetic of extension (never a partly given frame)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinetoscope.pipelines.conditioning import (
    aligned_prefix,
    encode_given,
    fill_canvas,
    frame_groups,
    layout_given,
    paste_given,
)
from kinetoscope.pipelines.extend import WindowPlan
from kinetoscope.vae.framing import latent_frames


def test_frame_groups_follow_the_causal_vae():
    groups = frame_groups(16, 4)
    assert [list(g) for g in groups] == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15]]
    assert [list(g) for g in frame_groups(1, 4)] == [[0]]
    for n in range(1, 30):
        flat = [f for g in frame_groups(n, 4) for f in g]
        assert flat == list(range(n)) and len(frame_groups(n, 4)) == latent_frames(n, 4)


@pytest.mark.parametrize(
    "num_frames, positions, given, partial",
    [
        (16, [0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]),  # image-to-video: frame 0 has a latent frame of its own
        (16, [15], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]),  # the last frame shares its latent frame
        (16, range(9), [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]),  # an aligned prefix
        (16, range(7), [1, 1, 0, 0, 0], [0, 0, 1, 0, 0]),  # a prefix ending inside a group
        (17, range(9, 17), [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]),  # a suffix starting a group
        (16, [*range(5), *range(12, 16)], [1, 1, 0, 0, 1], [0, 0, 0, 1, 0]),  # connect, B misaligned by one
    ],
)
def test_layout_sorts_latent_frames_into_given_partial_and_free(num_frames, positions, given, partial):
    layout = layout_given(num_frames, positions, 4)
    assert layout.given.tolist() == [bool(g) for g in given]
    assert layout.partial.tolist() == [bool(p) for p in partial]
    assert (layout.free == ~(layout.given | layout.partial)).all()


def test_layout_refuses_positions_outside_or_repeated():
    with pytest.raises(ValueError, match="0..15"):
        layout_given(16, [16], 4)
    with pytest.raises(ValueError, match="repeat"):
        layout_given(16, [3, 3], 4)


def test_canvas_fills_unknown_frames_with_the_nearest_given_one():
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 20)])
    canvas = fill_canvas(frames, [6, 2], 9)  # frame 6 is 10, frame 2 is 20
    assert canvas[:, 0, 0, 0].tolist() == [20, 20, 20, 20, 20, 10, 10, 10, 10]  # frame 4: a tie, the earlier wins
    assert np.array_equal(paste_given(np.zeros((9, 2, 2, 3), np.uint8), frames, [6, 2])[[6, 2]], frames)


def test_aligned_prefix_is_one_plus_whole_groups():
    assert [aligned_prefix(n, 4) for n in range(1, 11)] == [1, 1, 1, 1, 5, 5, 5, 5, 9, 9]


def test_a_given_prefix_gets_exactly_the_latents_it_has_alone(tiny_pipeline, rendered_clip):
    """The causal encoder never looks ahead, so the filled canvas leaves the prefix's latents as they are."""
    frames = rendered_clip.frames[:9]
    layout = layout_given(16, range(9), tiny_pipeline.vae.temporal_compression)
    with torch.no_grad():
        held = encode_given(tiny_pipeline.encode, frames, layout)
        alone = tiny_pipeline.encode(frames)
    assert held.latents.shape[2] == 5 and held.release_mask is None
    assert held.given_mask.reshape(-1).tolist() == [True, True, True, False, False]
    torch.testing.assert_close(held.latents[:, :, :3], alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window_frames, context_frames", [(16, 5), (16, 1), (16, 9), (32, 5)])
def test_extension_windows_fit_the_model_and_hold_whole_latent_frames(window_frames, context_frames):
    windows = WindowPlan(window_frames, context_frames, 4)
    most = latent_frames(window_frames, 4)
    for available in range(1, 40):
        for remaining in range(1, 40):
            context, new = windows.forward(available, remaining)
            assert 1 <= new <= remaining and 1 <= context <= available
            assert context >= min(aligned_prefix(available, 4), aligned_prefix(context_frames, 4))
            layout = layout_given(context + new, range(context), 4)
            assert len(layout.given) <= most and not layout.partial.any() and layout.given.sum() >= 1

            context, sampled, new = windows.backward(available, remaining)
            assert 1 <= new <= min(remaining, sampled) and 1 <= context <= available and sampled - new < 4
            layout = layout_given(sampled + context, range(sampled, sampled + context), 4)
            assert len(layout.given) <= most and not layout.partial.any() and layout.given.sum() >= 1


def test_windows_refuse_a_context_that_fills_the_window():
    with pytest.raises(ValueError, match="context_frames"):
        WindowPlan(16, 16, 4)

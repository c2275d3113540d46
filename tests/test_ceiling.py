"""The analyzer on VAE round trips: the adherence ceiling any DiT over a VAE can reach."""

from __future__ import annotations

import numpy as np
import pytest

from kinetoscope.evaluation.ceiling import reconstruction_adherence, vae_roundtrip


@pytest.mark.parametrize("num_objects", [1, 2])
def test_a_lossless_round_trip_reaches_every_attribute(num_objects: int) -> None:
    shares = reconstruction_adherence(lambda frames, caption: frames, count=6, num_objects=num_objects)
    assert shares["all_correct"] == 1.0
    assert {"color", "shape", "size", "direction", "speed", "background", "count"} <= shares.keys()


def test_a_round_trip_that_loses_motion_caps_direction_and_speed() -> None:
    frozen = lambda frames, caption: np.repeat(frames[:1], len(frames), axis=0)  # noqa: E731 - every frame is the first
    shares = reconstruction_adherence(frozen, count=8)
    assert shares["color"] == 1.0 and shares["background"] == 1.0
    assert shares["direction"] < 0.5 and shares["all_correct"] < 0.5


def test_the_vae_round_trip_keeps_the_frames_layout(tiny_pipeline) -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 16, 24, 3), dtype=np.uint8)
    out = vae_roundtrip(tiny_pipeline.vae)(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="count"):
        reconstruction_adherence(lambda f, c: f, count=0)

"""Natural-image video (camera moves over bundled photos), lavfi patterns, and the VAE's training mix."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the photos")

from kinetoscope.data import lavfi  # noqa: E402
from kinetoscope.data.camera_moves import (  # noqa: E402
    HELDOUT_PHOTOS,
    MOVES,
    TRAIN_PHOTOS,
    camera_move,
    load_photo,
    photo_clip,
    pick_photo,
)
from kinetoscope.data.vae_mix import ClipBucket, VAEMix, VAEMixConfig, heldout_clips  # noqa: E402


def _motion(clip: np.ndarray) -> np.ndarray:
    """Mean absolute change between consecutive frames, per frame pair."""
    return np.abs(np.diff(clip.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))


def test_every_listed_photo_loads_offline_as_rgb() -> None:
    assert not set(TRAIN_PHOTOS) & set(HELDOUT_PHOTOS)
    for name in TRAIN_PHOTOS + HELDOUT_PHOTOS:
        photo = load_photo(name)
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[-1] == 3, name
        assert min(photo.shape[:2]) >= 100, name


@pytest.mark.parametrize(("num_frames", "height", "width"), [(17, 64, 64), (9, 64, 112), (5, 112, 64), (1, 32, 32)])
@pytest.mark.parametrize("move", MOVES)
def test_camera_move_has_the_requested_shape(move: str, num_frames: int, height: int, width: int) -> None:
    clip = photo_clip(7, height=height, width=width, num_frames=num_frames, move=move)
    assert clip.shape == (num_frames, height, width, 3) and clip.dtype == np.uint8
    assert clip.std() > 5  # a picture, not a blank


def test_same_seed_same_clip_other_seed_other_clip() -> None:
    a = photo_clip(3, height=64, width=64, num_frames=9)
    b = photo_clip(3, height=64, width=64, num_frames=9)
    c = photo_clip(4, height=64, width=64, num_frames=9)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("seed", range(6))
def test_pans_and_zooms_move_every_frame_and_stills_do_not(seed: int) -> None:
    photo = load_photo("astronaut")
    for move in ("pan", "zoom_in", "zoom_out"):
        clip = camera_move(photo, seed=seed, height=64, width=64, num_frames=9, move=move)
        assert (_motion(clip) > 0.5).all(), (move, _motion(clip))
    still = camera_move(photo, seed=seed, height=64, width=64, num_frames=9, move="still")
    assert _motion(still).max() == 0


@pytest.mark.parametrize("seed", range(4))
def test_a_pan_moves_the_view_along_a_line_at_constant_speed(seed: int) -> None:
    # A photo whose red and green channels are its x and y coordinates: the centre pixel of
    # each frame then reads off where the camera looks (resampling keeps linear ramps exact).
    y, x = np.mgrid[0:240, 0:240]
    ramp = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    clip = camera_move(ramp, seed=seed, height=32, width=32, num_frames=9, move="pan").astype(float)
    centre = clip[:, 15:17, 15:17, :2].mean(axis=(1, 2))  # "t 2": x, y of the view's centre
    steps = np.diff(centre, axis=0)
    assert np.linalg.norm(steps, axis=1).min() > 0.4  # it moves every frame...
    # ...by the same step, to within the rounding of two uint8 pixels.
    assert np.abs(steps - steps.mean(axis=0)).max() <= 1.01


def test_splits_draw_only_their_own_photos_and_all_of_them() -> None:
    assert {pick_photo(seed, "heldout") for seed in range(60)} == set(HELDOUT_PHOTOS)
    assert {pick_photo(seed, "train") for seed in range(400)} == set(TRAIN_PHOTOS)
    seed = 5
    expected = camera_move(load_photo(pick_photo(seed, "heldout")), seed=seed, height=32, width=32, num_frames=5)
    np.testing.assert_array_equal(photo_clip(seed, height=32, width=32, num_frames=5, split="heldout"), expected)
    with pytest.raises(ValueError, match="split"):
        photo_clip(0, height=64, width=64, num_frames=1, split="test")


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="move"):
        camera_move(load_photo("camera"), seed=0, height=64, width=64, num_frames=5, move="dolly")
    with pytest.raises(ValueError, match="photo"):
        load_photo("lena")


@pytest.mark.skipif(not lavfi.available(), reason="this PyAV has no libavfilter")
@pytest.mark.parametrize("source", lavfi.SOURCES)
def test_lavfi_sources_give_deterministic_moving_clips(source: str) -> None:
    a = lavfi.lavfi_clip(5, height=64, width=112, num_frames=9, source=source)
    b = lavfi.lavfi_clip(5, height=64, width=112, num_frames=9, source=source)
    assert a.shape == (9, 64, 112, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert _motion(a).mean() > 0.5


def test_mix_yields_images_and_videos_of_the_requested_sizes() -> None:
    buckets = (ClipBucket(1, 32, 32, 1.0), ClipBucket(5, 64, 112, 1.0), ClipBucket(9, 64, 64, 1.0))
    mix = VAEMix(VAEMixConfig(buckets=buckets, batch_size=2, seed=3))
    seen_shapes, seen_sources = set(), set()
    for step in range(24):
        batch = mix.batch(step)
        b, t, h, w, c = batch.frames.shape
        assert (t, h, w) in {(k.num_frames, k.height, k.width) for k in buckets} and c == 3
        assert b == mix.clips_per_batch(ClipBucket(t, h, w, 1.0)) == len(batch.sources)
        seen_shapes.add((t, h, w))
        seen_sources.update(batch.sources)
    assert seen_shapes == {(1, 32, 32), (5, 64, 112), (9, 64, 64)}
    assert {"shapes", "photos"} <= seen_sources
    # The compute of two 17 x 64 x 64 clips, counting 2 causal padding frames per clip.
    assert mix.clips_per_batch(buckets[0]) == round(2 * 19 * 64 * 64 / (3 * 32 * 32)) == 51
    assert mix.clips_per_batch(buckets[2]) == round(2 * 19 / 11) == 3


def test_mix_batches_are_a_function_of_the_step() -> None:
    mix = VAEMix(VAEMixConfig(batch_size=1, seed=11))
    np.testing.assert_array_equal(mix.batch(4).frames, VAEMix(VAEMixConfig(batch_size=1, seed=11)).batch(4).frames)
    a, b = mix.batch(4).frames, mix.batch(5).frames
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_mix_rejects_sizes_off_the_latent_grid() -> None:
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        VAEMixConfig(buckets=(ClipBucket(16, 64, 64, 1.0),))
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        VAEMixConfig(buckets=(ClipBucket(17, 60, 64, 1.0),))


def test_heldout_clips_are_fixed_and_sized() -> None:
    clips = heldout_clips("shapes", 2, num_frames=5, height=32, width=32)
    assert clips.shape == (2, 5, 32, 32, 3)
    np.testing.assert_array_equal(clips, heldout_clips("shapes", 2, num_frames=5, height=32, width=32))
    assert not np.array_equal(clips[0], clips[1])


def test_a_box_as_large_as_the_card_stays_inside_it() -> None:
    """A 112x64 pan over a 224x128 test card: the largest box is the whole card, and float
    rounding used to put its corner at -1e-14, which stopped a VAE training run at step 2004."""
    from kinetoscope.data import lavfi

    for seed in (8, 18, 28):
        clip = lavfi.lavfi_clip(seed, height=112, width=64, num_frames=17, source="smptebars")
        assert clip.shape == (17, 112, 64, 3)

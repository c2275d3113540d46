"""The Shapes World renderer against the spec's geometry, motion and colours."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kinetoscope.shapes import spec
from kinetoscope.shapes.render import draw, render_clip, render_random_clip, sample_scene, trajectory
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec


def one_object(shape: str = "circle", *, size: str = "large", direction: str = "still", speed: str = "slowly",
               color: str = "orange", background: str = "gray") -> SceneSpec:  # fmt: skip
    return SceneSpec(background, (ObjectSpec(color, shape, size, direction, speed),))


def point_inside(shape: str, x: np.ndarray, y: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The spec's shapes written out independently of the renderer."""
    x0, y0, x1, y1 = box
    s = x1 - x0
    if shape == "square":
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    if shape == "circle":
        return np.hypot(x - (x0 + s / 2), y - (y0 + s / 2)) <= s / 2
    # Triangle: apex (x0 + s/2, y0), base corners (x0, y1) and (x1, y1).
    return (y >= y0) & (y <= y1) & (np.abs(x - (x0 + s / 2)) <= (y - y0) / 2)


def alpha_of(frame: np.ndarray, color: str, background: str) -> np.ndarray:
    """Per pixel, how much of the object colour is mixed over the background (least squares over RGB)."""
    c = np.array(spec.COLORS[color], float)
    b = np.array(spec.BACKGROUNDS[background], float)
    return (frame.astype(float) - b) @ (c - b) / ((c - b) @ (c - b))


@pytest.mark.parametrize("shape", spec.SHAPES)
@pytest.mark.parametrize(("height", "width"), [(64, 64), (64, 112), (112, 64), (256, 256)])
def test_exact_colours_inside_and_background_outside(shape: str, height: int, width: int) -> None:
    clip = render_clip(one_object(shape), height=height, width=width, num_frames=3, seed=4)
    colour = np.array(spec.COLORS["orange"], np.uint8)
    background = np.array(spec.BACKGROUNDS["gray"], np.uint8)
    rows, cols = np.mgrid[0:height, 0:width]
    for frame, box in zip(clip.frames, clip.boxes[:, 0]):
        # A pixel whose four corners lie in a convex shape lies in it entirely.
        corners = [point_inside(shape, cols + dx, rows + dy, box) for dx in (0, 1) for dy in (0, 1)]
        full = np.logical_and.reduce(corners)
        x0, y0, x1, y1 = box
        outside = (cols + 1 <= x0) | (cols >= x1) | (rows + 1 <= y0) | (rows >= y1)
        assert full.sum() > 0.3 * (x1 - x0) ** 2
        assert (frame[full] == colour).all()
        assert (frame[outside] == background).all()


@pytest.mark.parametrize(("shape", "fraction"), [("circle", math.pi / 4), ("square", 1.0), ("triangle", 0.5)])
@pytest.mark.parametrize("size", spec.SIZES)
@pytest.mark.parametrize(("height", "width"), [(64, 64), (112, 64), (256, 256)])
def test_area_and_position_match_the_spec(shape: str, fraction: float, size: str, height: int, width: int) -> None:
    clip = render_clip(one_object(shape, size=size, direction="down-right", speed="quickly", background="black"),
                       height=height, width=width, num_frames=4, seed=7)  # fmt: skip
    side = spec.SIZES[size] * min(height, width)
    np.testing.assert_allclose(clip.boxes[..., 2] - clip.boxes[..., 0], side)
    np.testing.assert_allclose(clip.boxes[..., 3] - clip.boxes[..., 1], side)
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    for frame, box in zip(clip.frames, clip.boxes[:, 0]):
        alpha = alpha_of(frame, "orange", "black")
        assert alpha.sum() == pytest.approx(fraction * side**2, rel=0.03)
        # The drawn shape sits where the box says: its centroid is the shape's centroid.
        centroid_y = (alpha * rows).sum() / alpha.sum()
        centroid_x = (alpha * cols).sum() / alpha.sum()
        expected_y = box[1] + side * (2 / 3 if shape == "triangle" else 1 / 2)
        assert centroid_x == pytest.approx((box[0] + box[2]) / 2, abs=0.2)
        assert centroid_y == pytest.approx(expected_y, abs=0.2)


def test_triangle_points_up() -> None:
    clip = render_clip(one_object("triangle", background="black"), height=128, width=128, num_frames=1)
    x0, y0, x1, y1 = clip.boxes[0, 0]
    alpha = alpha_of(clip.frames[0], "orange", "black")
    widths = alpha.sum(axis=1)
    top, bottom = int(np.ceil(y0)) + 2, int(np.floor(y1)) - 2
    assert widths[top] < 0.2 * widths[bottom]
    assert widths[bottom] == pytest.approx((bottom + 0.5 - y0) * (x1 - x0) / (y1 - y0), rel=0.05)


@pytest.mark.parametrize("direction", [d for d in spec.DIRECTIONS if d != "still"])
@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 112), (112, 64)])
def test_bounces_keep_the_box_inside_at_constant_speed(direction: str, height: int, width: int) -> None:
    scene = one_object("square", size="large", direction=direction, speed="quickly")
    clip = render_clip(scene, height=height, width=width, num_frames=64, seed=11)
    boxes = clip.boxes[:, 0]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    steps = np.diff(boxes[:, :2], axis=0)
    np.testing.assert_allclose(np.hypot(steps[:, 0], steps[:, 1]), 0.04 * min(height, width), rtol=1e-9)
    # 63 steps cover far more than the canvas: every moving axis must have reversed at least once.
    for axis, unit in enumerate(spec.DIRECTIONS[direction]):
        if unit:
            signs = np.sign(steps[:, axis])
            assert signs[0] == np.sign(unit) and (signs == -signs[0]).any()


@pytest.mark.parametrize("direction", list(spec.DIRECTIONS))
@pytest.mark.parametrize("speed", spec.SPEEDS)
def test_displacement_per_frame_is_the_spec_speed(direction: str, speed: str) -> None:
    clip = render_clip(one_object(direction=direction, speed=speed), height=64, width=112, num_frames=16, seed=2)
    steps = np.hypot(*np.diff(clip.boxes[:, 0, :2], axis=0).T)
    expected = 0.0 if direction == "still" else spec.SPEEDS[speed] * 64
    np.testing.assert_allclose(steps, expected, atol=1e-9)
    # Started mid-canvas, no wall is near: the first step points the named way (up is towards row 0).
    obj = one_object(direction=direction, speed=speed).objects[0]
    first = np.diff(trajectory(obj, (40.0, 20.0), height=64, width=112, num_frames=2), axis=0)[0]
    np.testing.assert_allclose(first, np.array(spec.DIRECTIONS[direction]) * expected, atol=1e-12)


def test_start_positions_cover_the_frame() -> None:
    starts = np.array([render_clip(one_object(size="small"), num_frames=1, seed=s).boxes[0, 0] for s in range(200)])
    side = 0.2 * 64
    assert (starts[:, :2] >= 0).all() and (starts[:, 2:] <= 64).all()
    assert starts[:, 0].min() < 5 and starts[:, 0].max() > 64 - side - 5
    assert starts[:, 1].min() < 5 and starts[:, 1].max() > 64 - side - 5


def test_deterministic_per_seed() -> None:
    a = render_random_clip(123, height=64, width=112, num_frames=8)
    b = render_random_clip(123, height=64, width=112, num_frames=8)
    c = render_random_clip(124, height=64, width=112, num_frames=8)
    assert a.scene == b.scene and a.caption == b.caption
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize(("height", "width"), [(64, 112), (112, 64), (32, 256)])
def test_non_square_canvases(height: int, width: int) -> None:
    clip = render_random_clip(5, height=height, width=width, num_frames=5, num_objects=2)
    assert clip.frames.shape == (5, height, width, 3) and clip.frames.dtype == np.uint8
    assert clip.boxes.shape == (5, 2, 4)
    assert clip.fps == spec.FPS
    assert clip.caption == spec.canonical_caption(clip.scene)


def test_one_frame_clip() -> None:
    clip = render_random_clip(9, num_frames=1)
    assert clip.frames.shape == (1, 64, 64, 3) and clip.boxes.shape[0] == 1


def test_second_object_is_drawn_over_the_first() -> None:
    scene = SceneSpec("white", (ObjectSpec("red", "square", "large", "still", "slowly"),
                                ObjectSpec("blue", "square", "small", "still", "slowly")))  # fmt: skip
    boxes = np.array([[[10.0, 10.0, 32.4, 32.4], [20.0, 20.0, 32.8, 32.8]]])
    frame = draw(scene, boxes, height=64, width=64)[0]
    assert tuple(frame[25, 25]) == spec.COLORS["blue"]
    assert tuple(frame[15, 15]) == spec.COLORS["red"]
    assert tuple(frame[40, 40]) == spec.BACKGROUNDS["white"]


def test_sample_scene_covers_the_world() -> None:
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(400)]
    assert {len(s.objects) for s in scenes} == {1, 2}
    objects = [o for s in scenes for o in s.objects]
    assert {s.background for s in scenes} == set(spec.BACKGROUNDS)
    for attribute, values in (("color", spec.COLORS), ("shape", spec.SHAPES), ("size", spec.SIZES),
                              ("direction", spec.DIRECTIONS), ("speed", spec.SPEEDS)):  # fmt: skip
        assert {getattr(o, attribute) for o in objects} == set(values)
    assert all(o.speed == "slowly" for o in objects if o.direction == "still")
    assert all(len(sample_scene(rng, num_objects=2).objects) == 2 for _ in range(20))
    with pytest.raises(ValueError, match="num_objects"):
        sample_scene(rng, num_objects=3)


def test_render_rejects_canvases_outside_the_spec() -> None:
    with pytest.raises(ValueError, match="width 60"):
        render_clip(one_object(), width=60)
    with pytest.raises(ValueError, match="num_frames 65"):
        render_clip(one_object(), num_frames=65)


def test_large_clip_renders_fast() -> None:
    import time

    start = time.perf_counter()
    render_random_clip(3, height=256, width=256, num_frames=64, num_objects=2)
    assert time.perf_counter() - start < 2.0  # ~0.1 s measured; generous for a shared 2-core machine


def test_first_bounce_is_the_first_reversed_step() -> None:
    from kinetoscope.shapes.render import first_bounce

    scene = SceneSpec("black", (ObjectSpec("red", "circle", "large", "right", "quickly"),
                                ObjectSpec("blue", "square", "small", "still", "slowly")))  # fmt: skip
    for seed in range(20):
        boxes = render_clip(scene, seed=seed).boxes
        frames = first_bounce(boxes)
        assert frames[1] == 16  # a still object never bounces
        steps = np.diff(boxes[:, 0, 0])
        assert (steps[: frames[0] - 1] > 0).all()  # right up to the bounce
        if frames[0] < 16:
            assert steps[frames[0] - 1] < 0  # the step into the bounce frame goes left
    assert first_bounce(render_clip(scene, num_frames=1).boxes).tolist() == [1, 1]

"""The Shapes World renderer: scenes to uint8 clips, exactly as ``SHAPES_WORLD.md`` says.

Positions are continuous. Each object's bounding box starts uniformly inside the frame, among the
positions from which its first step does not reach a wall (see ``start_range``), frame 0 is drawn there, and before every step each velocity component that would carry the box across
a wall reverses, so the box moves by exactly its speed every frame and never leaves the frame.
Edges are anti-aliased by 8x8 supersampling; pixels a shape covers fully keep its exact colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from einops import rearrange

from kinetoscope.shapes import spec
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

# Sub-pixels per pixel along each axis: 8 x 8 keeps a small triangle's area within 2% (4 x 4 gave over 3%).
SUPERSAMPLE = 8
# Separate random streams for the scene and its start positions: drawing both from one
# generator seeded alike would tie, say, the background to where the first object starts.
_SCENE_STREAM, _POSITION_STREAM = 0, 1


@dataclass(frozen=True)
class RenderedClip:
    """A rendered clip and its ground truth.

    ``frames`` is uint8 ``"t h w c"`` (c = 3, RGB); ``boxes`` is float ``"t o 4"``: per frame and
    object, the bounding box ``(x0, y0, x1, y1)`` in pixels, x to the right and y down.
    """

    frames: np.ndarray
    scene: SceneSpec
    caption: str
    boxes: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]


def sample_scene(rng: np.random.Generator, *, num_objects: int | None = None) -> SceneSpec:
    """Draw a scene uniformly over the spec's attributes (``num_objects`` None: 1 or 2, uniformly).

    A still object's speed is set to "slowly" so that the ground truth never claims a speed
    class for something that does not move.
    """
    if num_objects is None:
        num_objects = int(rng.integers(1, 3))
    if num_objects not in (1, 2):
        raise ValueError(f"num_objects must be 1 or 2, got {num_objects}")
    background = str(rng.choice(list(spec.BACKGROUNDS)))
    colors = rng.choice(list(spec.COLORS), size=num_objects, replace=False)
    objects = []
    for color in colors:
        direction = str(rng.choice(list(spec.DIRECTIONS)))
        speed = str(rng.choice(list(spec.SPEEDS)))
        objects.append(
            ObjectSpec(
                color=str(color),
                shape=str(rng.choice(spec.SHAPES)),
                size=str(rng.choice(list(spec.SIZES))),
                direction=direction,
                speed="slowly" if direction == "still" else speed,
            )
        )
    return SceneSpec(background, tuple(objects))


def trajectory(
    obj: ObjectSpec, start: tuple[float, float], *, height: int, width: int, num_frames: int
) -> np.ndarray:
    """Top-left corners ``"t 2"`` (x, y) of ``obj``'s box, starting at ``start``, with wall bounces."""
    side = obj.side(height, width)
    limits = np.array([width - side, height - side])
    position = np.array(start, dtype=np.float64)
    velocity = np.array(obj.velocity(height, width), dtype=np.float64)
    corners = np.empty((num_frames, 2))
    corners[0] = position
    for t in range(1, num_frames):
        ahead = position + velocity
        velocity = np.where((ahead < 0) | (ahead > limits), -velocity, velocity)
        position = position + velocity
        corners[t] = position
    return corners


def first_bounce(boxes: np.ndarray) -> np.ndarray:
    """Per object, the first frame whose step reverses a velocity component (a wall bounce).

    Takes boxes ``"t o 4"`` as :func:`scene_boxes` returns them; an object that never bounces
    (or never moves) gets ``t``, the clip's length. Frame ``k`` here means the step from frame
    ``k - 1`` to ``k`` already goes the other way.
    """
    steps = np.diff(boxes[:, :, :2], axis=0)                                                    # t-1 o 2
    if steps.shape[0] < 2:
        return np.full(boxes.shape[1], boxes.shape[0], dtype=np.int64)
    turned = ((np.sign(steps[1:]) != np.sign(steps[:1])) & (np.abs(steps[:1]) > 1e-9)).any(-1)  # t-2 o
    return np.where(turned.any(0), turned.argmax(0) + 2, boxes.shape[0]).astype(np.int64)


def start_range(obj: ObjectSpec, *, height: int, width: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Ranges ``((x_lo, x_hi), (y_lo, y_hi))`` of the box's top-left corner at frame 0.

    The spec draws the start uniformly with the whole object inside the frame. We draw it uniformly
    over the slightly smaller region from which the first step stays inside too: an object starting
    against the wall it heads for would bounce before it ever moved, and the clip would show the
    opposite of its caption from frame 0 on (3.8% of 64 x 64 clips), which no analyzer can tell.
    """
    side = obj.side(height, width)
    ranges = []
    for limit, v in zip((width - side, height - side), obj.velocity(height, width)):
        ranges.append((max(0.0, -v), limit - max(0.0, v)))
    return ranges[0], ranges[1]


def scene_boxes(
    scene: SceneSpec, rng: np.random.Generator, *, height: int, width: int, num_frames: int
) -> np.ndarray:
    """Boxes ``"t o 4"`` (x0, y0, x1, y1) for every object, start positions drawn from ``rng``."""
    boxes = np.empty((num_frames, len(scene.objects), 4))
    for i, obj in enumerate(scene.objects):
        (x_lo, x_hi), (y_lo, y_hi) = start_range(obj, height=height, width=width)
        start = (rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi))
        side = obj.side(height, width)
        corners = trajectory(obj, start, height=height, width=width, num_frames=num_frames)
        boxes[:, i, :2] = corners
        boxes[:, i, 2:] = corners + side
    return boxes


def _inside(shape: str, x: np.ndarray, y: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Whether points lie inside the shape; ``x`` is ``"t 1 w"``, ``y`` is ``"t h 1"``, ``box`` is ``"t 4"``."""
    x0, y0, x1, y1 = (box[:, k, None, None] for k in range(4))
    side = x1 - x0
    if shape == "square":
        return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    if shape == "circle":
        radius = side / 2
        return (x - (x0 + radius)) ** 2 + (y - (y0 + radius)) ** 2 <= radius**2
    if shape == "triangle":
        # Apex at the middle of the top edge, base along the bottom: half-width grows as depth / 2.
        depth = y - y0
        return (depth >= 0) & (y < y1) & (np.abs(x - (x0 + side / 2)) <= depth / 2)
    raise ValueError(f"unknown shape {shape!r}")


def coverage(shape: str, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of each pixel the shape covers, in a square window around each box.

    Takes boxes ``"t 4"``; returns the coverage, float32 ``"t k k"``, and the window's top-left
    pixel (column, row) per frame, int ``"t 2"``. Only the window is supersampled, so the cost
    follows the shape's size, not the canvas's.
    """
    window = int(np.ceil(boxes[0, 2] - boxes[0, 0])) + 2
    origin = np.floor(boxes[:, :2]).astype(np.int64)
    offsets = (np.arange(window * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = (origin[:, 0, None] + offsets)[:, None, :]
    ys = (origin[:, 1, None] + offsets)[:, :, None]
    inside = _inside(shape, xs, ys, boxes)
    fraction = rearrange(inside, "t (y sy) (x sx) -> t y x (sy sx)", sy=SUPERSAMPLE, sx=SUPERSAMPLE)
    return fraction.mean(axis=-1, dtype=np.float32), origin


def draw(scene: SceneSpec, boxes: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """Frames uint8 ``"t h w c"`` of ``scene`` with its objects at ``boxes`` ``"t o 4"``."""
    num_frames = boxes.shape[0]
    # Windows may hang past the right or bottom edge (never the left or top): padding absorbs them.
    pad = int(np.ceil((boxes[0, :, 2] - boxes[0, :, 0]).max())) + 2
    canvas = np.empty((num_frames, height + pad, width + pad, 3), dtype=np.uint8)
    canvas[...] = spec.BACKGROUNDS[scene.background]
    t = np.arange(num_frames)[:, None, None]
    for i, obj in enumerate(scene.objects):
        alpha, origin = coverage(obj.shape, boxes[:, i])
        window = alpha.shape[-1]
        rows = origin[:, 1, None, None] + np.arange(window)[None, :, None]
        cols = origin[:, 0, None, None] + np.arange(window)[None, None, :]
        under = canvas[t, rows, cols].astype(np.float32)
        color = np.array(spec.COLORS[obj.color], dtype=np.float32)
        # "Over" compositing: the later object covers what lies beneath in proportion to its coverage.
        blended = under + alpha[..., None] * (color - under)
        canvas[t, rows, cols] = np.rint(blended).astype(np.uint8)
    return np.ascontiguousarray(canvas[:, :height, :width])


def position_rng(seed: int) -> np.random.Generator:
    """The generator :func:`render_clip` draws start positions from for ``seed``."""
    return np.random.default_rng((seed, _POSITION_STREAM))


def render_clip(
    scene: SceneSpec,
    *,
    height: int = spec.DEFAULT_HEIGHT,
    width: int = spec.DEFAULT_WIDTH,
    num_frames: int = spec.DEFAULT_NUM_FRAMES,
    seed: int = 0,
) -> RenderedClip:
    """Render ``scene``; ``seed`` picks the start positions, so a (scene, seed) pair is one clip."""
    spec.validate_canvas(height, width, num_frames)
    boxes = scene_boxes(scene, position_rng(seed), height=height, width=width, num_frames=num_frames)
    frames = draw(scene, boxes, height=height, width=width)
    return RenderedClip(frames, scene, spec.canonical_caption(scene), boxes, float(spec.FPS))


def render_random_clip(
    seed: int,
    *,
    height: int = spec.DEFAULT_HEIGHT,
    width: int = spec.DEFAULT_WIDTH,
    num_frames: int = spec.DEFAULT_NUM_FRAMES,
    num_objects: int | None = None,
) -> RenderedClip:
    """Sample a scene from ``seed`` and render it (start positions from the same seed)."""
    scene = sample_scene(np.random.default_rng((seed, _SCENE_STREAM)), num_objects=num_objects)
    return render_clip(scene, height=height, width=width, num_frames=num_frames, seed=seed)

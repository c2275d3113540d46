"""Natural-image video: pans, zooms and still crops over the photos that scikit-image ships.

No sample videos ship in any package, but scikit-image bundles photos that load offline. A
virtual camera moving over a photo gives video with real textures and real motion (every
pixel moves coherently, as in a camera pan), which the Shapes World's flat colours lack.
Some photos are held out of training so that the VAE benchmark measures reconstruction on
images the model never saw.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

# Photos that load from scikit-image's own files (its other data sets need a download).
# chelsea and cat are the same image, so only chelsea is listed.
TRAIN_PHOTOS: tuple[str, ...] = (
    "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel",
    "logo", "motorcycle_left", "motorcycle_right", "camera", "brick", "cell", "clock", "grass",
    "gravel", "moon", "page", "text", "checkerboard",
)  # fmt: skip
# Held out of training: two colour photos and one grayscale, for the benchmark.
HELDOUT_PHOTOS: tuple[str, ...] = ("chelsea", "coffee", "coins")
MOVES: tuple[str, ...] = ("pan", "zoom_in", "zoom_out", "still")
# Camera speed in output pixels per frame: slow enough to stay coherent at 8 fps, fast
# enough that a 4-frame latent step really carries motion.
_PAN_SPEED = (0.5, 3.0)
# Total zoom factor over a clip (ratio of the box sides at its two ends).
_ZOOM_RANGE = (1.15, 1.8)


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """One bundled photo as uint8 ``"h w c"`` RGB (grayscale repeated, RGBA over white)."""
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        image = left if name == "motorcycle_left" else right
    elif name in TRAIN_PHOTOS or name in HELDOUT_PHOTOS:
        image = getattr(skimage.data, name)()
    else:
        raise ValueError(f"unknown photo {name!r}; expected one of {', '.join(TRAIN_PHOTOS + HELDOUT_PHOTOS)}")
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.shape[-1] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255.0
        image = np.rint(image[..., :3] * alpha + 255.0 * (1.0 - alpha))
    image = image.astype(np.uint8)
    image.setflags(write=False)  # shared through the cache: nobody may draw on it
    return image


def _box_height_range(image_hw: tuple[int, int], height: int, width: int) -> tuple[float, float]:
    """Smallest and largest crop-box height (in photo pixels) for an output of this size."""
    photo_h, photo_w = image_hw
    largest = min(photo_h, photo_w * height / width)
    # Down to 0.75x the output size: a mild upsampling blur is realistic, more is not.
    smallest = min(0.75 * height, largest)
    return smallest, largest


def _centres_range(image_hw: tuple[int, int], box_h: float, box_w: float) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest (cx, cy) that keep a box of this size inside the photo."""
    photo_h, photo_w = image_hw
    low = np.array([box_w / 2, box_h / 2])
    high = np.array([photo_w - box_w / 2, photo_h - box_h / 2])
    return low, np.maximum(high, low)


def _trajectory(
    rng: np.random.Generator, image_hw: tuple[int, int], move: str, height: int, width: int, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame box centres ``"t 2"`` (cx, cy) and box heights ``"t"``, in photo pixels."""
    smallest, largest = _box_height_range(image_hw, height, width)
    aspect = width / height
    frames = np.arange(num_frames, dtype=np.float64)
    if move in ("zoom_in", "zoom_out"):
        ratio = min(rng.uniform(*_ZOOM_RANGE), largest / smallest)
        big = math.exp(rng.uniform(math.log(smallest * ratio), math.log(largest))) if ratio > 1 else largest
        low, high = _centres_range(image_hw, big, big * aspect)  # both ends must fit: centre for the big box
        centre = rng.uniform(low, high)
        # Geometric interpolation: a zoom looks uniform when the scale changes by a constant factor per frame.
        fraction = frames / max(num_frames - 1, 1)
        if move == "zoom_in":
            heights = big * (1 / ratio) ** fraction
        else:
            heights = big / ratio * ratio**fraction
        return np.repeat(centre[None], num_frames, axis=0), heights
    box_h = math.exp(rng.uniform(math.log(smallest), math.log(largest)))
    low, high = _centres_range(image_hw, box_h, box_h * aspect)
    start = rng.uniform(low, high)
    heights = np.full(num_frames, box_h)
    if move == "still" or num_frames == 1:
        return np.repeat(start[None], num_frames, axis=0), heights
    angle = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    # Output pixels per frame, converted to photo pixels by the crop's scale.
    distance = rng.uniform(*_PAN_SPEED) * (box_h / height) * (num_frames - 1)
    # Bounce the direction off the photo's edges so a pan from near an edge still moves.
    room = np.where(direction >= 0, high - start, start - low)
    direction = np.where(room < np.abs(direction) * distance, -direction, direction)
    end = np.clip(start + direction * distance, low, high)
    fraction = (frames / (num_frames - 1))[:, None]
    return start + fraction * (end - start), heights


def camera_move(
    image: np.ndarray,
    *,
    seed: int,
    height: int,
    width: int,
    num_frames: int,
    move: str | None = None,
) -> np.ndarray:
    """Film ``image`` (uint8 ``"h w c"``) with a virtual camera; returns uint8 ``"t h w c"``.

    ``move`` is one of ``MOVES`` (random when None); the box's position, size, direction,
    speed and a left-right flip all come from ``seed``, so one seed gives one clip.
    """
    if move is not None and move not in MOVES:
        raise ValueError(f"unknown move {move!r}; expected one of {', '.join(MOVES)}")
    if height < 1 or width < 1 or num_frames < 1:
        raise ValueError(f"clip size must be positive, got {num_frames}x{height}x{width}")
    rng = np.random.default_rng(seed)
    move = move or str(rng.choice(MOVES))
    if rng.random() < 0.5:
        image = image[:, ::-1]
    centres, box_heights = _trajectory(rng, image.shape[:2], move, height, width, num_frames)
    photo = Image.fromarray(np.ascontiguousarray(image))
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t, ((cx, cy), box_h) in enumerate(zip(centres, box_heights)):
        box_w = box_h * width / height
        # Clamped to the photo: a box as large as the photo can overshoot it by float rounding
        # (1e-14 px), which Pillow rejects.
        photo_w, photo_h = photo.size
        box = (max(cx - box_w / 2, 0.0), max(cy - box_h / 2, 0.0), min(cx + box_w / 2, photo_w), min(cy + box_h / 2, photo_h))
        # Pillow's resize with a float box filters over the whole footprint when it
        # shrinks, so downscaled crops are antialiased rather than aliased.
        frames[t] = np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC, box=box))
    return frames


def pick_photo(seed: int, split: str = "train") -> str:
    """The name of the photo that ``photo_clip(seed, split=split)`` films."""
    photos = {"train": TRAIN_PHOTOS, "heldout": HELDOUT_PHOTOS}.get(split)
    if photos is None:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'heldout'")
    # Its own stream, so the photo does not correlate with the move drawn from the same seed.
    return photos[np.random.default_rng((seed, 1)).integers(len(photos))]


def photo_clip(
    seed: int,
    *,
    height: int,
    width: int,
    num_frames: int,
    split: str = "train",
    move: str | None = None,
) -> np.ndarray:
    """A camera move over a photo picked by ``seed`` from the ``"train"`` or ``"heldout"`` photos."""
    return camera_move(load_photo(pick_photo(seed, split)), seed=seed, height=height, width=width, num_frames=num_frames, move=move)

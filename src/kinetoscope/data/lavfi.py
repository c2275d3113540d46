"""Synthetic test-pattern video from FFmpeg's lavfi sources, through PyAV.

testsrc2 (moving test card), mandelbrot (a continuous zoom), life (Conway's game of life) and
cellauto (a scrolling 1-D automaton) add motion kinds the other sources lack: text, fine
structure that changes in place, and content that appears rather than moves. smptebars is a
still card, filmed with a camera move like a photo. A PyAV built without libavfilter cannot
open them; ``available()`` says so and the training mix then leaves them out.
"""

from __future__ import annotations

import functools

import numpy as np

from kinetoscope.data.camera_moves import camera_move

SOURCES: tuple[str, ...] = ("testsrc2", "mandelbrot", "life", "cellauto", "smptebars")
# life and cellauto draw one pixel per cell; rendering them smaller and enlarging by nearest
# neighbour gives cells of 2-4 pixels, structure an 8x-downsampling VAE can hope to keep.
_CELL_SIDES = (2, 4)


def _hex_colour(rng: np.random.Generator) -> str:
    return "#" + "".join(f"{v:02x}" for v in rng.integers(0, 256, size=3))


def _filter_graph(source: str, rng: np.random.Generator, height: int, width: int) -> tuple[str, int]:
    """The lavfi description for ``source`` and the nearest-neighbour enlargement it needs."""
    if source == "testsrc2":
        return f"testsrc2=size={width}x{height}:rate=8", 1
    if source == "mandelbrot":
        start = float(np.exp(rng.uniform(np.log(0.01), np.log(3.0))))
        return (f"mandelbrot=size={width}x{height}:rate=8:start_scale={start:.5f}:end_scale={start / 20:.6f}:end_pts=120"), 1
    if source == "smptebars":
        # Twice the size, so the camera move has room to pan.
        return f"smptebars=size={2 * width}x{2 * height}:rate=8", 1
    cell = int(rng.choice(_CELL_SIDES))
    size = f"{-(-width // cell)}x{-(-height // cell)}"
    seed = int(rng.integers(0, 2**31))
    if source == "life":
        colours = ":".join(f"{k}={_hex_colour(rng)}" for k in ("life_color", "death_color", "mold_color"))
        ratio = rng.uniform(0.1, 0.5)
        return f"life=size={size}:rate=8:seed={seed}:ratio={ratio:.3f}:mold=20:{colours}", cell
    if source == "cellauto":
        # Rules that keep a random row alive; others (18, 90 at low fill) can die out to black.
        rule = int(rng.choice([30, 45, 110, 150]))
        fill = rng.uniform(0.2, 0.5)
        graph = f"cellauto=size={size}:rate=8:seed={seed}:rule={rule}:random_fill_ratio={fill:.3f}:scroll=1:start_full=1"
        return graph, cell
    raise ValueError(f"unknown lavfi source {source!r}; expected one of {', '.join(SOURCES)}")


def _decode(graph: str, num_frames: int, skip: int) -> np.ndarray:
    import av

    frames = []
    with av.open(graph, format="lavfi") as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= skip:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == num_frames:
                break
    return np.stack(frames)


def lavfi_clip(seed: int, *, height: int, width: int, num_frames: int, source: str | None = None) -> np.ndarray:
    """A clip from one lavfi source (random when None), uint8 ``"t h w c"``; one seed, one clip."""
    rng = np.random.default_rng(seed)
    source = source or str(rng.choice(SOURCES))
    graph, cell = _filter_graph(source, rng, height, width)
    if source == "smptebars":
        card = _decode(graph, 1, 0)[0]
        return camera_move(card, seed=seed, height=height, width=width, num_frames=num_frames, move="pan")
    # A random start: the sources are deterministic in time, so the offset is what varies them.
    skip = int(rng.integers(0, 48))
    clip = _decode(graph, num_frames, skip)
    if cell > 1:
        clip = clip.repeat(cell, axis=1).repeat(cell, axis=2)
    return np.ascontiguousarray(clip[:, :height, :width])


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether this PyAV can open lavfi sources (it needs FFmpeg's libavfilter)."""
    try:
        _decode("testsrc2=size=32x32:rate=8", 1, 0)
    except Exception:  # any failure means "not here"; the reason does not change what we do
        return False
    return True

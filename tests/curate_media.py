"""Real encoded test videos for the curation tests, made with PyAV: codecs, aspect ratios,
rotation, audio, variable frame rate, known scene cuts, and broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def lavfi(graph: str, num_frames: int) -> np.ndarray:
    """``num_frames`` RGB frames "t h w 3" of an FFmpeg lavfi source, e.g. ``testsrc2=size=96x54:rate=12``."""
    frames = []
    with av.open(graph, format="lavfi") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == num_frames:
                break
    return np.stack(frames)


def encode(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str = "libx264",
    fmt: str | None = None,
    fps: int = 12,
    times_ms: list[int] | None = None,
    rotation: int = 0,
    audio: bool = False,
    options: dict | None = None,
) -> Path:
    """Encode "t h w 3" frames; ``times_ms`` gives each frame's timestamp (variable rate)."""
    fmt = fmt or {".mp4": "mp4", ".webm": "webm", ".mkv": "matroska"}[path.suffix]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = options or {}
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=16000) if audio else None
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            else:
                frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if sound is not None:
            samples = int(16000 * len(frames) / fps)
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000)).astype(np.float32)
            for start in range(0, samples - 1024, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


# Known cuts: the first frame of the second scene, per file.
CUTS = {"two_scenes.mp4": 24, "portrait/two_scenes_vp9.webm": 15}
# Clip captions from the SRT beside two_scenes.mp4, per scene.
SRT = """1
00:00:00,000 --> 00:00:02,000
a <i>test card</i>

2
00:00:02,000 --> 00:00:03,500
a fractal zoom
"""


def make_corpus(folder: Path) -> dict[str, str]:
    """Write the test corpus into ``folder``; returns {input name: what it tests}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "portrait").mkdir(exist_ok=True)
    card = lavfi("testsrc2=size=96x54:rate=12", 24)
    zoom = lavfi("mandelbrot=size=96x54:rate=12", 18)
    encode(folder / "two_scenes.mp4", np.concatenate([card, zoom]))
    (folder / "two_scenes.srt").write_text(SRT)
    tall = np.concatenate([lavfi("mandelbrot=size=54x96:rate=10", 15), lavfi("testsrc2=size=54x96:rate=10", 15)])
    encode(folder / "portrait/two_scenes_vp9.webm", tall, codec="libvpx-vp9", fps=10)
    square = lavfi("mandelbrot=size=64x64:rate=12", 16)
    encode(folder / "square_mpeg4.mp4", square, codec="mpeg4")
    (folder / "square_mpeg4.json").write_text('{"text": "a square test card"}')
    encode(folder / "cinema_21x9.mkv", lavfi("testsrc2=size=126x54:rate=12", 14))
    (folder / "cinema_21x9.txt").write_text("a wide   test card\n")
    # Gaps alternate 50 and 150 ms: 10 fps on average, a 20 fps header.
    vfr_times = [i // 2 * 200 + i % 2 * 50 for i in range(14)]
    encode(folder / "vfr.mkv", lavfi("testsrc2=size=64x36:rate=10", 14), fps=20, times_ms=vfr_times)
    marked = lavfi("testsrc2=size=64x36:rate=12", 14)
    marked[:, :12, :12] = 255  # a white block at the stored picture's top left
    encode(folder / "rotated.mp4", marked, rotation=90)
    encode(folder / "with_audio.mp4", lavfi("testsrc2=size=64x36:rate=12", 14), audio=True)
    encode(folder / "one_frame.mp4", card[:1])
    # The same picture, re-encoded by another codec: a near-duplicate of cinema_21x9.mkv.
    encode(folder / "cinema_copy.mp4", lavfi("testsrc2=size=126x54:rate=12", 14), codec="mpeg4")
    encode(folder / "still_bars.mp4", np.repeat(lavfi("smptebars=size=64x36:rate=12", 1), 14, axis=0))
    broken = encode(folder / ".source.mp4", np.concatenate([card, card]), options={"movflags": "+faststart"})
    (folder / "truncated.mp4").write_bytes(broken.read_bytes()[: broken.stat().st_size * 2 // 3])
    broken.unlink()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video\n" * 20)
    good = encode(folder / ".good.mkv", card[:8]).read_bytes()
    (folder / "unsupported.mkv").write_bytes(good.replace(b"V_MPEG4/ISO/AVC", b"V_QUUX0/ISO/ZZZ"))
    (folder / ".good.mkv").unlink()
    (folder / "readme.md").write_text("not an input: no video suffix\n")
    return {
        "two_scenes.mp4": "h264 16:9, cut at 24",
        "portrait/two_scenes_vp9.webm": "vp9 9:16, cut at 15",
        "square_mpeg4.mp4": "mpeg4 1:1",
        "cinema_21x9.mkv": "21:9",
        "vfr.mkv": "variable frame rate",
        "rotated.mp4": "rotation 90",
        "with_audio.mp4": "aac audio",
        "one_frame.mp4": "one frame",
        "cinema_copy.mp4": "near-duplicate",
        "still_bars.mp4": "static",
        "truncated.mp4": "truncated",
        "empty.mp4": "zero bytes",
        "notes.mp4": "text named .mp4",
        "unsupported.mkv": "unsupported codec",
    }


class MeanColourCaptioner:
    """A real, simple captioner (no model): names the brightest channel of the middle frame."""

    def caption(self, frames) -> str:
        means = frames[len(frames) // 2].reshape(-1, 3).mean(0)
        return f"a mostly {('red', 'green', 'blue')[int(means.argmax())]} clip"

"""Video I/O on real files made here with PyAV and Pillow: round trips, probing, bad input, atomicity."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.palette import build_palette
from kinetoscope.io.video import probe, read_image, read_video, write_video

RED, GREEN, BLUE, YELLOW = (230, 40, 40), (40, 190, 70), (40, 90, 230), (240, 220, 40)
# Largest error allowed in a CRF-18 H.264 round trip (yuv420p halves chroma resolution and
# DCT blocks ring near edges). Measured on these clips: 8-10 at 4+ pixels from any edge,
# 2 at 8+ pixels (the RGB -> limited-range YUV rounding alone costs 2); mean error 0.18.
MP4_NEAR_EDGE_TOLERANCE = 12
MP4_FLAT_TOLERANCE = 3


def shapes_clip(t: int = 16, h: int = 64, w: int = 64, background=(0, 0, 0), still: bool = False) -> np.ndarray:
    """A Shapes-World-like clip "t h w 3": flat background, a moving square and a moving disk."""
    frames = np.empty((t, h, w, 3), np.uint8)
    frames[:] = background
    rows, cols = np.mgrid[0:h, 0:w]
    for i in range(t):
        step = 0 if still else i
        frames[i, 8 : 8 + 16, 4 + step : 4 + step + 16] = RED
        disk = (rows - 40) ** 2 + (cols - 44 + step // 2) ** 2 <= 8**2
        frames[i][disk] = GREEN
    return frames


def flat_mask(frames: np.ndarray, radius: int = 4) -> np.ndarray:
    """True where a pixel equals every source pixel within ``radius`` (away from edges)."""
    t, h, w, _ = frames.shape
    mask = np.ones((t, h, w), bool)
    padded = np.pad(frames, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[:, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            mask &= (shifted == frames).all(-1)
    return mask


def encode_with_pyav(path: Path, frames: np.ndarray, codec: str, fmt: str, fps: int = 8, **options) -> Path:
    """Write ``frames`` with an arbitrary PyAV encoder (independent of ``write_video``)."""
    with av.open(str(path), "w", format=fmt, options=options.pop("container_options", {})) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = options
        for index, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    return path


def noisy_clip(t: int = 48, size: int = 64) -> np.ndarray:
    """Incompressible frames, so a file's bytes spread over all its frames (for truncation)."""
    return np.random.default_rng(0).integers(0, 256, (t, size, size, 3), dtype=np.uint8)


# Round trips of each writer.


def test_mp4_round_trip_keeps_count_size_fps_and_flat_colours(tmp_path):
    frames = shapes_clip()
    path = write_video(tmp_path / "clip.mp4", frames, 8)
    decoded, fps = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert fps == 8.0
    error = np.abs(decoded.astype(int) - frames.astype(int))
    near_edges, interior = flat_mask(frames, radius=4), flat_mask(frames, radius=8)
    assert interior.mean() > 0.5
    assert error[near_edges].max() <= MP4_NEAR_EDGE_TOLERANCE
    assert error[interior].max() <= MP4_FLAT_TOLERANCE
    assert error[near_edges].mean() < 0.5


@pytest.mark.parametrize("fps", [8.0, 24.0, 30000 / 1001])
def test_mp4_keeps_fractional_and_integer_rates(tmp_path, fps):
    path = write_video(tmp_path / "rate.mp4", shapes_clip(t=6, h=32, w=48), fps)
    info = probe(path)
    assert info.num_frames == 6 and (info.width, info.height) == (48, 32)
    assert info.fps == pytest.approx(fps, rel=1e-6)


def test_gif_round_trip_is_exact_for_few_colours(tmp_path):
    frames = shapes_clip(background=(128, 128, 128))
    path = write_video(tmp_path / "clip.gif", frames, 8)
    decoded, fps = read_video(path)
    np.testing.assert_array_equal(decoded, frames)
    assert fps == 8.0
    info = probe(path)
    assert (info.num_frames, info.duration, info.codec, info.container) == (16, 2.0, "gif", "gif")
    with Image.open(path) as gif:  # a second, independent decoder agrees, and the clip loops
        assert gif.info["loop"] == 0
        pillow_frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    np.testing.assert_array_equal(np.stack(pillow_frames), frames)


def test_gif_keeps_identical_frames_of_a_still_clip(tmp_path):
    path = write_video(tmp_path / "still.gif", shapes_clip(t=5, still=True), 8)
    assert probe(path).num_frames == 5


@pytest.mark.parametrize("fps", [24.0, 10.0, 3.0])
def test_gif_average_rate_follows_fps(tmp_path, fps):
    path = write_video(tmp_path / "rate.gif", shapes_clip(t=12, h=32, w=32), fps)
    assert probe(path).fps == pytest.approx(fps, rel=0.02)


def test_gif_many_colours_keep_dominant_colours_exact(tmp_path):
    frames = shapes_clip(t=4)
    cols, rows = np.arange(64)[None] * 4, np.arange(8)[:, None] * 32
    frames[:, 56:, :, 0], frames[:, 56:, :, 1], frames[:, 56:, :, 2] = cols, rows, 255 - cols  # 512 colours
    assert len(np.unique(frames.reshape(-1, 3), axis=0)) > 256
    decoded, _ = read_video(write_video(tmp_path / "many.gif", frames, 8))
    error = np.abs(decoded.astype(int) - frames.astype(int))
    assert error[:, :56].max() == 0
    assert error.max() <= 24


def test_palette_is_exact_below_256_colours():
    frames = shapes_clip(t=3)
    indices, palette = build_palette(frames)
    assert indices.shape == frames.shape[:-1] and palette.shape == (256, 3)
    np.testing.assert_array_equal(palette[indices], frames)


def test_png_round_trip_is_exact_and_accepts_one_image(tmp_path):
    image = shapes_clip(t=1)[0]
    path = write_video(tmp_path / "frame.png", image, 8)
    np.testing.assert_array_equal(read_image(path), image)
    frames, fps = read_video(path, image_fps=4.0)
    assert frames.shape == (1, 64, 64, 3) and fps == 4.0


def test_png_refuses_several_frames(tmp_path):
    with pytest.raises(KinetoscopeError, match="exactly one frame"):
        write_video(tmp_path / "two.png", shapes_clip(t=2), 8)
    assert list(tmp_path.iterdir()) == []


def test_odd_size_mp4_is_refused_with_a_hint_and_gif_works(tmp_path):
    frames = shapes_clip(t=3, h=33, w=48)
    with pytest.raises(KinetoscopeError, match=r"even.*\.gif"):
        write_video(tmp_path / "odd.mp4", frames, 8)
    assert list(tmp_path.iterdir()) == []
    decoded, _ = read_video(write_video(tmp_path / "odd.gif", frames, 8))
    np.testing.assert_array_equal(decoded, frames)


def test_unknown_output_suffix_and_too_fast_gif_are_user_errors(tmp_path):
    with pytest.raises(KinetoscopeError, match=r"\.avi"):
        write_video(tmp_path / "clip.avi", shapes_clip(t=2), 8)
    with pytest.raises(KinetoscopeError, match="100 fps"):
        write_video(tmp_path / "fast.gif", shapes_clip(t=2), 120)
    assert list(tmp_path.iterdir()) == []


# Reading containers written by other encoders.


@pytest.mark.parametrize(
    ("name", "codec", "fmt", "container"),
    [
        ("vp9.webm", "libvpx-vp9", "webm", "webm"),
        ("mpeg4.mp4", "mpeg4", "mp4", "mp4"),
        ("h264.mkv", "libx264", "matroska", "matroska"),
        ("faststart.mp4", "libx264", "mp4", "mp4"),
    ],
)
def test_reads_and_probes_each_container(tmp_path, name, codec, fmt, container):
    frames = shapes_clip(t=10, h=48, w=64)
    options = {"container_options": {"movflags": "+faststart"}} if name == "faststart.mp4" else {}
    path = encode_with_pyav(tmp_path / name, frames, codec, fmt, **options)
    decoded, fps = read_video(path)
    assert decoded.shape == frames.shape and fps == 8.0
    # Generous: these encoders run at their default (lossy) quality; this checks the content.
    assert np.abs(decoded.astype(int) - frames.astype(int))[flat_mask(frames)].mean() < 4
    info = probe(path)
    expected_codec = {"libvpx-vp9": "vp9", "mpeg4": "mpeg4", "libx264": "h264"}[codec]
    assert (info.num_frames, info.fps, info.width, info.height) == (10, 8.0, 64, 48)
    assert (info.codec, info.container, info.duration) == (expected_codec, container, 1.25)
    assert info.pix_fmt == "yuv420p" and not info.has_audio and info.rotation == 0


@pytest.mark.parametrize(("suffix", "pil_format"), [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")])
def test_reads_images_as_one_frame_videos(tmp_path, suffix, pil_format):
    image = shapes_clip(t=1, h=40, w=56)[0]
    path = tmp_path / f"still{suffix}"
    Image.fromarray(image).save(path, format=pil_format, quality=95)
    frames, fps = read_video(path, image_fps=2.0)
    assert frames.shape == (1, 40, 56, 3) and fps == 2.0
    assert np.abs(frames[0].astype(int) - image.astype(int))[flat_mask(image[None])[0]].max() <= 8
    info = probe(path, image_fps=2.0)
    assert (info.num_frames, info.fps, info.width, info.height, info.duration) == (1, 2.0, 56, 40, 0.5)
    assert info.codec == pil_format.lower()


def test_max_frames_stops_early(tmp_path):
    path = write_video(tmp_path / "clip.mp4", shapes_clip(), 8)
    frames, fps = read_video(path, max_frames=5)
    assert frames.shape[0] == 5 and fps == 8.0


def test_variable_frame_rate_uses_timestamps_not_the_nominal_rate(tmp_path):
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, frame in enumerate(noisy_clip(t=10, size=32)):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            # Gaps alternate 50 and 150 ms: 10 fps on average, 20 fps in the header.
            video_frame.pts, video_frame.time_base = index // 2 * 200 + index % 2 * 50, Fraction(1, 1000)
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the header does not know the count
    info = probe(path)
    assert info.num_frames == 10 and info.fps == pytest.approx(9 / 0.85, abs=1e-3)  # 9 gaps in 850 ms
    assert info.duration == pytest.approx(10 / info.fps)


# Bad input: one KinetoscopeError naming the file, never a crash or a hang.


def make_bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Bad input files by case name: (path, a phrase the error message must contain)."""
    good = encode_with_pyav(folder / "good.mp4", noisy_clip(), "libx264", "mp4")
    faststart = encode_with_pyav(
        folder / "good_faststart.mp4", noisy_clip(), "libx264", "mp4", container_options={"movflags": "+faststart"}
    )
    cases: dict[str, tuple[Path, str]] = {"missing": (folder / "missing.mp4", "no such file")}
    cases["directory"] = (folder, "directory")
    cases["zero_bytes"] = (folder / "empty.mp4", "0 bytes")
    cases["zero_bytes"][0].write_bytes(b"")
    cases["random_bytes"] = (folder / "random.mp4", "not a readable video")
    cases["random_bytes"][0].write_bytes(np.random.default_rng(1).bytes(20_000))
    cases["text"] = (folder / "notes.mp4", "not a readable video")
    cases["text"][0].write_text("this is not a video\n" * 50)
    for case, source in [("truncated", good), ("truncated_faststart", faststart)]:
        cut = folder / f"{case}.mp4"
        cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        cases[case] = (cut, "truncated")
    cases["zero_frames"] = (_audio_only_video_track(folder / "no_frames.mkv"), "no video frames")
    cases["corrupt_png"] = (folder / "broken.png", "not a readable image")
    cases["corrupt_png"][0].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    jpeg = folder / "cut.jpg"
    Image.fromarray(noisy_clip(t=1)[0]).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[:3000])
    cases["truncated_jpeg"] = (jpeg, "truncated")
    gif = write_video(folder / "good.gif", noisy_clip(t=12), 8).read_bytes()
    cases["truncated_gif"] = (folder / "half.gif", "truncated")
    cases["truncated_gif"][0].write_bytes(gif[: len(gif) // 2])  # still decodes 6 frames, no error
    return cases


def _audio_only_video_track(path: Path) -> Path:
    """An mkv whose video stream exists but holds no frames (only audio packets were muxed)."""
    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=8)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        for index in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


BAD_CASES = [
    "missing", "directory", "zero_bytes", "random_bytes", "text",
    "truncated", "truncated_faststart", "zero_frames", "truncated_gif",
    "corrupt_png", "truncated_jpeg",
]  # fmt: skip


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", BAD_CASES)
@pytest.mark.parametrize("reader", [read_video, probe])
def test_bad_input_raises_one_line_naming_the_file(bad_inputs, case, reader):
    path, phrase = bad_inputs[case]
    with pytest.raises(KinetoscopeError) as caught:
        reader(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:") and phrase in message and "\n" not in message


def test_truncated_faststart_file_partly_decodes_before_the_error(tmp_path):
    """The index up front lists every frame, so decoding starts fine and must notice the cut."""
    source = encode_with_pyav(
        tmp_path / "fs.mp4", noisy_clip(), "libx264", "mp4", container_options={"movflags": "+faststart"}
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size * 3 // 4])
    with av.open(str(cut)) as container:
        assert container.streams.video[0].frames == 48
    with pytest.raises(KinetoscopeError, match=r"truncated.* [1-9]\d* (frames|decode)"):
        probe(cut)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = write_video(tmp_path / "locked.gif", shapes_clip(t=2), 8)
    path.chmod(0)
    with pytest.raises(KinetoscopeError, match="Permission denied"):
        read_video(path)


# Atomic writes.


def frames_then_bad_shape(bad_at: int = 5):
    """Good frames, then one of the wrong shape: the writer fails in the middle of the file."""
    clip = shapes_clip(t=bad_at)
    yield from clip
    yield np.zeros((32, 32, 3), np.uint8)


def frames_then_interrupt(interrupt_at: int = 5):
    yield from shapes_clip(t=interrupt_at)
    raise KeyboardInterrupt


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_failed_write_leaves_no_file(tmp_path, suffix):
    with pytest.raises(ValueError, match="frame 5"):
        write_video(tmp_path / f"clip{suffix}", frames_then_bad_shape(), 8)
    with pytest.raises(KeyboardInterrupt):
        write_video(tmp_path / f"clip{suffix}", frames_then_interrupt(), 8)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path):
    path = write_video(tmp_path / "clip.mp4", shapes_clip(t=3), 8)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_video(path, frames_then_bad_shape(), 8)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_streamed_frames_and_new_folders(tmp_path):
    path = write_video(tmp_path / "new" / "folder" / "clip.mp4", iter(shapes_clip(t=4)), 8)
    assert probe(path).num_frames == 4
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]


def test_mp4_bytes_are_identical_run_to_run(tmp_path: Path) -> None:
    """The same frames give the same file: data sets and demos are reproducible byte for byte.

    With PyAV converting rgb24 inside ``stream.encode``, this clip came out 6 ways in 8 writes;
    with x264's AVX-512 code (on machines that have it), in about 1 write of 14 another way.
    """
    from kinetoscope.io.encode import _x264_cpu_options
    from kinetoscope.shapes.render import render_random_clip

    options = _x264_cpu_options().get("x264-params", "")
    assert "AVX512" not in options
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "avx512f" in cpuinfo.read_text():  # x264 would pick AVX-512: it must be told not to
        assert options.startswith("asm=") and "AVX2" in options
    frames = render_random_clip(0, num_frames=16).frames
    first = write_video(tmp_path / "a.mp4", frames, 8.0).read_bytes()
    for index in range(31):
        assert write_video(tmp_path / f"{index}.mp4", frames, 8.0).read_bytes() == first

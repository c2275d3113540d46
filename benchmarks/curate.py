"""Speed of ``kinetoscope data curate`` per stage on this machine: clips per second.

    python benchmarks/curate.py                  # 12 files of 6 s at 256x144, 24 fps (~1 min)
    python benchmarks/curate.py --size 640x360   # a bigger picture
    python benchmarks/curate.py --workers 2      # also the wall-clock rate with two processes

Makes its own corpus offline (FFmpeg lavfi test patterns through PyAV: a moving test card, a
fractal zoom, the game of life and still colour bars, three scenes per
file, H.264), then curates it in this process and reads each stage's time from the run's
records. Per-frame stages (scenes, motion, quality, dedup) run inside the single decode pass
and are timed inside it; "probe" is that pass less them (decoding and scaling), "write" the
second decode plus H.264 encoding of the clips. Captions come from sidecar .txt files here (a
vision-language model's speed is the model's). clips/s is clips over the stage's seconds;
src fps is source frames over them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from kinetoscope.data.curate.config import CurateConfig
from kinetoscope.data.curate.inputs import list_sources
from kinetoscope.data.curate.runner import STAGES, curate

# cellauto is left out: its 1-pixel cells change so much every frame that ContentDetector,
# merging cuts in a run of high scores, misses the cut into or out of it.
SOURCES = ("testsrc2", "mandelbrot", "life", "smptebars")


def pattern(source: str, width: int, height: int, frames: int, fps: int) -> np.ndarray:
    graph = f"{source}=size={width}x{height}:rate={fps}"
    out = []
    with av.open(graph, format="lavfi") as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == frames:
                break
    return np.stack(out)


def make_corpus(folder: Path, files: int, width: int, height: int, seconds: float, fps: int) -> int:
    """``files`` H.264 files of three scenes each; returns the number of source frames."""
    per_scene = round(seconds * fps / 3)
    total = 0
    for index in range(files):
        scenes = [pattern(SOURCES[(index + k) % len(SOURCES)], width, height, per_scene, fps) for k in range(3)]
        frames = np.concatenate(scenes)
        with av.open(str(folder / f"video_{index:03d}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        (folder / f"video_{index:03d}.txt").write_text(f"test pattern number {index}\n")
        total += len(frames)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12, help="videos in the corpus (default: 12)")
    parser.add_argument("--size", default="256x144", help="WIDTHxHEIGHT of the videos (default: 256x144)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each video (default: 6)")
    parser.add_argument("--fps", type=int, default=24, help="frame rate (default: 24)")
    parser.add_argument("--workers", type=int, default=1, help="also time a run with this many processes (default: 1)")
    args = parser.parse_args()
    width, height = map(int, args.size.lower().split("x"))
    config = CurateConfig(min_seconds=1.0, max_seconds=4.0)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "in"
        corpus.mkdir()
        frames = make_corpus(corpus, args.files, width, height, args.seconds, args.fps)
        tic = time.perf_counter()
        summary = curate(list_sources(corpus), Path(tmp) / "out", config, progress=False)
        wall = time.perf_counter() - tic
        parallel = None
        if args.workers > 1:
            tic = time.perf_counter()
            curate(list_sources(corpus), Path(tmp) / "out2", config, workers=args.workers, progress=False)
            parallel = time.perf_counter() - tic
    clips = summary.clips
    print(f"{args.files} files of {args.seconds:g} s, {width}x{height} at {args.fps} fps ({frames} frames), "
          f"{clips} clips; {os.cpu_count()} CPU cores, 1 worker")  # fmt: skip
    print(f"| {'stage':<9} | {'seconds':>8} | {'clips/s':>9} | {'src fps':>9} |")
    print(f"|{'-' * 11}|{'-' * 10}|{'-' * 11}|{'-' * 11}|")
    for stage in STAGES:
        spent = summary.seconds.get(stage, 0.0)
        if stage == "scores" and spent < 1e-3:
            continue  # no aesthetic or text model given
        rate = f"{clips / spent:9.1f}" if spent > 0 else f"{'-':>9}"
        fps_rate = f"{frames / spent:9.0f}" if spent > 0 else f"{'-':>9}"
        print(f"| {stage:<9} | {spent:8.3f} | {rate} | {fps_rate} |")
    print(f"| {'all':<9} | {wall:8.3f} | {clips / wall:9.1f} | {frames / wall:9.0f} |")
    if parallel is not None:
        print(f"| {f'{args.workers} workers':<9} | {parallel:8.3f} | {clips / parallel:9.1f} | {frames / parallel:9.0f} |")


if __name__ == "__main__":
    main()

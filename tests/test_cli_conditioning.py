"""`generate --image`, `extend`, `connect`, `edit` and `eval conditioning` through the installed
console script on a tiny model folder: frame counts, sizes, given frames back, and exit 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinetoscope.evaluation.conditioning import psnr
from kinetoscope.io.video import read_video, write_video

# Given frames are pasted back exactly; an .mp4 output then loses only what H.264 at crf 18 does.
MP4_PSNR = 30.0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, rendered_clip, rendered_wide_clip):
    """Input files: a 12-frame GIF (exact colours), a 4-frame GIF, a PNG, a wide PNG, an empty file."""
    folder = tmp_path_factory.mktemp("inputs")
    write_video(folder / "a.gif", rendered_clip.frames[:12], 8.0)
    write_video(folder / "b.gif", rendered_clip.frames[12:], 8.0)
    write_video(folder / "image.png", rendered_clip.frames[5], 8.0)
    write_video(folder / "wide.png", rendered_wide_clip.frames[0], 8.0)
    (folder / "empty.mp4").write_bytes(b"")
    return folder


@pytest.mark.parametrize("frame, position", [("0", 0), ("-1", 15)])
def test_generate_with_an_image_puts_it_at_its_frame(run_cli, tiny_model_dir, inputs, rendered_clip, tmp_path, frame, position):
    out = tmp_path / "video.mp4"
    result = run_cli("generate", "a ball", "-o", out, "--image", inputs / "image.png", "--image-frame", frame,
                     "--model", tiny_model_dir, "--steps", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames, fps = read_video(out)
    assert frames.shape == (16, 64, 64, 3) and fps == 8
    assert psnr(frames[position], rendered_clip.frames[5]) > MP4_PSNR
    assert f"image at frame {position}" in result.stdout and "red circle" in result.stderr


def test_one_frame_with_an_image_is_the_image(run_cli, tiny_model_dir, inputs, rendered_clip, tmp_path):
    out = tmp_path / "image.png"
    result = run_cli("generate", "a ball", "-o", out, "--num-frames", "1", "--image", inputs / "image.png",
                     "--model", tiny_model_dir)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert np.array_equal(read_video(out)[0][0], rendered_clip.frames[5])


@pytest.mark.parametrize("backward", [False, True])
def test_extend_writes_the_video_and_the_new_frames(run_cli, tiny_model_dir, inputs, rendered_clip, tmp_path, backward):
    out = tmp_path / "long.mp4"
    args = ["--backward"] if backward else []
    result = run_cli("extend", inputs / "a.gif", "moving left", "-o", out, "--num-frames", "13", *args,
                     "--model", tiny_model_dir, "--steps", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames, _ = read_video(out)
    assert frames.shape == (25, 64, 64, 3)
    kept = frames[13:] if backward else frames[:12]
    assert psnr(kept, rendered_clip.frames[:12]) > MP4_PSNR


def test_connect_writes_a_new_frames_b(run_cli, tiny_model_dir, inputs, rendered_clip, tmp_path):
    out = tmp_path / "joined.mp4"
    result = run_cli("connect", inputs / "a.gif", inputs / "b.gif", "a ball", "-o", out, "--num-frames", "6",
                     "--model", tiny_model_dir, "--steps", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames, _ = read_video(out)
    assert frames.shape == (12 + 6 + 4, 64, 64, 3)
    assert psnr(frames[:12], rendered_clip.frames[:12]) > MP4_PSNR
    assert psnr(frames[18:], rendered_clip.frames[12:]) > MP4_PSNR


def test_edit_keeps_frame_count_and_size(run_cli, tiny_model_dir, inputs, tmp_path):
    out = tmp_path / "edited.gif"
    result = run_cli("edit", inputs / "a.gif", "a green ball", "-o", out, "--strength", "0.6",
                     "--model", tiny_model_dir, "--steps", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read_video(out)[0].shape == (12, 64, 64, 3)
    assert "green circle" in result.stderr and "strength 0.6" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "a ball", "--image", "wide.png", "--width", "64"], "112x64"),
        (["generate", "a ball", "--image", "image.png", "--image-frame", "16"], "--image-frame"),
        (["generate", "a ball", "--image", "a.gif"], "is a video"),
        (["connect", "a.gif", "wide.png", "a ball", "--num-frames", "4"], "same size"),
        (["extend", "empty.mp4", "a ball", "--num-frames", "4"], "empty.mp4"),
        (["extend", "a.gif", "a ball", "--num-frames", "0"], "--num-frames"),
        (["connect", "a.gif", "b.gif", "a ball", "--num-frames", "0"], "--num-frames"),
        (["edit", "a.gif", "a ball", "--strength", "0"], "--strength"),
        (["edit", "a.gif", "a ball", "--strength", "1.5"], "--strength"),
        (["edit", "missing.mp4", "a ball"], "missing.mp4"),
        (["extend", "a.gif", "a ball", "--num-frames", "4", "--guidance-rescale", "-0.1"], "--guidance-rescale"),
        (["connect", "a.gif", "a.gif", "a ball", "--num-frames", "4", "--shift", "-1"], "--shift"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tiny_model_dir, inputs, args, message):
    result = run_cli(*args, "-o", "out.mp4", "--model", tiny_model_dir, cwd=inputs)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (inputs / "out.mp4").exists()


def test_eval_conditioning_reports_each_task(run_cli, tiny_model_dir):
    tasks = "image-to-video-last,connect,edit"
    result = run_cli("eval", "conditioning", "--model", tiny_model_dir, "--per-task", "1", "--steps", "1",
                     "--tasks", tasks, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report["summary"]) == tasks.split(",")
    assert report["summary"]["connect"]["min_given_psnr"] == 100.0  # given frames come back exactly
    low, high = report["summary"]["connect"]["passed_interval"]
    assert 0.0 <= low <= report["summary"]["connect"]["passed"] <= high <= 1.0
    assert {row["task"] for row in report["rows"]} == set(tasks.split(","))
    bad = run_cli("eval", "conditioning", "--model", tiny_model_dir, "--tasks", "animate")
    assert bad.returncode == 2 and "animate" in bad.stderr

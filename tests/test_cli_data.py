"""The installed ``kinetoscope data shapes`` and ``kinetoscope demo`` commands, and contact sheets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinetoscope.io.contact_sheet import contact_sheet, sample_times
from kinetoscope.io.video import read_image, read_video
from kinetoscope.shapes.dataset import read_metadata, scene_from_row


def test_data_shapes_writes_a_mixed_set(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = run_cli("data", "shapes", "--out", out, "--num", 6, "--sizes", "64x64,64x112", "--num-frames", "1,8",
                     "--seed", 5, "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert str(out / "metadata.csv") in result.stdout
    rows = read_metadata(out / "metadata.csv")
    assert len(rows) == 6
    for row in rows:
        frames, _ = read_video(out / row["path"])
        assert frames.shape == (int(row["num_frames"]), int(row["height"]), int(row["width"]), 3)
        assert scene_from_row(row).objects
    assert {r["width"] for r in rows} == {"64", "112"} and {r["num_frames"] for r in rows} == {"1", "8"}


def test_data_shapes_is_reproducible_from_the_seed(run_cli, tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = run_cli("data", "shapes", "--out", tmp_path / name, "--num", 3, "--num-frames", 4, "--format", "gif")
        assert result.returncode == 0, result.stderr
    rows = read_metadata(tmp_path / "a" / "metadata.csv")
    assert rows == read_metadata(tmp_path / "b" / "metadata.csv")
    assert all((tmp_path / "a" / r["path"]).read_bytes() == (tmp_path / "b" / r["path"]).read_bytes() for r in rows)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--num", "0"], "--num: 0"),
        (["--sizes", "64x60"], "64x60"),
        (["--sizes", "64by64"], "64by64"),
        (["--sizes", "24x64"], "height 24"),
        (["--height", "65"], "--height 65"),
        (["--width", "512"], "--width 512"),
        (["--num-frames", "16,65"], "--num-frames: 65"),
        (["--num-frames", "0"], "--num-frames: 0"),
        (["--num-frames", "many"], "'many'"),
        (["--objects", "1,3"], "--objects: 3"),
        (["--workers", "0"], "--workers: 0"),
        (["--seed", "-2"], "--seed: -2"),
        (["--format", "avi"], "'avi'"),
        (["--sizes", "64x64", "--height", "64"], "--sizes"),
    ],
)
def test_data_shapes_rejects_bad_arguments(run_cli, tmp_path: Path, args: list[str], named: str) -> None:
    result = run_cli("data", "shapes", "--out", tmp_path / "set", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and named in lines[0], result.stderr
    assert not (tmp_path / "set").exists()


def test_data_shapes_rejects_a_file_as_output_folder(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    result = run_cli("data", "shapes", "--out", target, "--num", 1)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and str(target) in result.stderr


def test_data_needs_a_data_command(run_cli) -> None:
    result = run_cli("data")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_demo_writes_clips_metadata_and_a_contact_sheet(run_cli, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--reference")
    assert result.returncode == 0, result.stderr
    assert str(out / "contact_sheet.png") in result.stdout
    rows = read_metadata(out / "metadata.csv")
    assert len(rows) == 8
    assert {r["aspect_ratio"] for r in rows} == {"1.0", "0.5714", "1.75"}
    objects = [json.loads(r["objects"]) for r in rows]
    assert {len(o) for o in objects} == {1, 2}
    assert any(o["direction"] == "still" for scene in objects for o in scene)
    for row in rows:
        frames, _ = read_video(out / row["path"])
        assert frames.shape == (int(row["num_frames"]), int(row["height"]), int(row["width"]), 3)
    sheet = read_image(out / "contact_sheet.png")
    # Eight rows of frames whose shorter side is 128 px: far taller than 8 x 128.
    assert sheet.shape[0] > 8 * 128 and sheet.shape[1] >= 6 * 128


def test_demo_generates_from_prompts_with_a_model(run_cli, tiny_model_dir, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--model", tiny_model_dir)
    assert result.returncode == 0, result.stderr
    assert "6 videos generated" in result.stdout
    videos = sorted((out / "videos").iterdir())
    assert len(videos) == 6 and read_video(videos[0])[0].shape == (16, 64, 64, 3)
    assert read_image(out / "contact_sheet.png").shape[0] > 6 * 64


def test_demo_rejects_a_file_as_output_folder(run_cli, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    result = run_cli("demo", "--out", tmp_path / "f")
    assert result.returncode == 2 and result.stderr.startswith("kinetoscope: error: --out")


def _solid_clip(num_frames: int, height: int, width: int, blue: int) -> np.ndarray:
    """Frame t is one flat colour (t, 200, blue): each sampled frame is findable by its colour."""
    clip = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        clip[t] = (t, 200, blue)
    return clip


def test_contact_sheet_samples_frames_and_scales_by_the_shorter_side() -> None:
    clips = [_solid_clip(16, 64, 64, 10), _solid_clip(3, 64, 112, 20), _solid_clip(1, 112, 64, 30)]
    sheet = contact_sheet(clips, ["a square clip", "a wide clip", "a tall still image"], frames_per_row=6)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    pixels = sheet.reshape(-1, 3)
    for clip, blue, area in ((16, 10, 128 * 128), (3, 20, 128 * 224), (1, 30, 224 * 128)):
        for t in range(clip):
            count = int(np.all(pixels == (t, 200, blue), axis=1).sum())
            assert count == (area if t in sample_times(clip, 6) else 0), (clip, t)


def test_contact_sheet_keeps_extreme_rows_within_bounds() -> None:
    sheet = contact_sheet([_solid_clip(8, 32, 256, 0)], ["a very wide clip"], short_side=128, max_row_width=1000)
    assert sheet.shape[1] <= 1000 + 2 * 16


def test_contact_sheet_checks_its_input() -> None:
    with pytest.raises(ValueError, match="captions"):
        contact_sheet([_solid_clip(2, 32, 32, 0)], [])
    with pytest.raises(ValueError, match="clip 0"):
        contact_sheet([np.zeros((2, 32, 32), np.uint8)], ["grey"])


def test_sample_times_span_the_clip() -> None:
    assert sample_times(16, 6) == [0, 3, 6, 9, 12, 15]
    assert sample_times(4, 6) == [0, 1, 2, 3]
    assert sample_times(1, 6) == [0]


def test_demo_with_a_model_generates_judges_and_lays_out_a_sheet(run_cli, tiny_model_dir: Path, tmp_path: Path) -> None:
    import csv

    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--model", tiny_model_dir)
    assert result.returncode == 0, result.stderr
    with open(out / "prompts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and f"{len(rows)} videos generated" in result.stdout
    for row in rows:
        # The caption is the upsampled prompt: canonical, naming a background the terse prompt may not.
        assert row["caption"].endswith("background.") and row["analyzer_all_correct"] in ("True", "False")
        # A clip judged wrong says what was missed, in the table and on the terminal.
        assert (row["analyzer_all_correct"] == "True") == (row["analyzer_misses"] == "")
        assert row["analyzer_all_correct"] == "True" or f"missed: {row['analyzer_misses']}" in result.stdout
        frames, _ = read_video(out / row["path"])
        assert frames.shape == (16, 64, 64, 3)
    sheet = read_image(out / "contact_sheet.png")
    assert sheet.shape[0] > 6 * 128


def test_demo_refuses_a_folder_that_is_not_a_model(run_cli, tmp_path: Path) -> None:
    result = run_cli("demo", "--out", tmp_path / "o", "--model", tmp_path)
    assert result.returncode == 2 and "not a kinetoscope model folder" in result.stderr
    assert not (tmp_path / "o").exists()

"""``kinetoscope info`` through the installed console script, on real files made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinetoscope.io.video import write_video
from test_video_io import BAD_CASES, make_bad_inputs

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"


def run_info(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KINETOSCOPE), "info", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def clip(t: int = 12, h: int = 48, w: int = 80) -> np.ndarray:
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, 10:26, 4 + 2 * i : 20 + 2 * i] = (40, 90, 230)
    return frames


def parse_lines(stdout: str) -> dict[str, str]:
    pairs = [line.split(": ", 1) for line in stdout.splitlines()]
    assert all(len(pair) == 2 for pair in pairs), stdout
    return dict(pairs)


def test_info_prints_one_key_value_per_line(tmp_path):
    path = write_video(tmp_path / "clip.mp4", clip(), 8)
    result = run_info(path)
    assert result.returncode == 0 and result.stderr == ""
    fields = parse_lines(result.stdout)
    assert fields["frames"] == "12" and fields["fps"] == "8" and fields["size"] == "80x48"
    assert fields["duration"] == "1.500 s" and fields["codec"] == "h264" and fields["container"] == "mp4"


def test_info_json_is_machine_readable(tmp_path):
    path = write_video(tmp_path / "clip.gif", clip(t=5), 10)
    result = run_info("--json", path)
    assert result.returncode == 0
    record = json.loads(result.stdout)
    assert record["num_frames"] == 5 and record["fps"] == 10.0 and (record["width"], record["height"]) == (80, 48)
    assert record["duration"] == 0.5 and record["codec"] == "gif" and record["path"] == str(path)


def test_info_on_an_image(tmp_path):
    path = tmp_path / "still.webp"
    Image.fromarray(clip(t=1)[0]).save(path, lossless=True)
    fields = parse_lines(run_info(path, "--image-fps", "4").stdout)
    assert (fields["frames"], fields["fps"], fields["size"], fields["codec"]) == ("1", "4", "80x48", "webp")


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    """Every bad-input case of the I/O tests (missing, corrupt, truncated, empty, ...)."""
    return {name: path for name, (path, _) in make_bad_inputs(tmp_path_factory.mktemp("bad")).items()}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exits_2_with_one_line(bad_inputs, case):
    path = bad_inputs[case]
    result = run_info(path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"kinetoscope: error: {path}: ")
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_exits_2(tmp_path):
    path = write_video(tmp_path / "locked.png", clip(t=1), 8)
    path.chmod(0)
    result = run_info(path)
    assert result.returncode == 2 and result.stderr.strip().endswith("(Permission denied)")


def test_bad_option_value_exits_2(tmp_path):
    path = write_video(tmp_path / "one.png", clip(t=1), 8)
    result = run_info(path, "--image-fps", "0")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "--image-fps" in result.stderr

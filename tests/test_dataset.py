"""Shapes World sample sets: files, metadata.csv, reproducibility, worker independence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from kinetoscope.io.video import read_video
from kinetoscope.shapes import spec
from kinetoscope.shapes.dataset import (
    COLUMNS,
    ShapesSetConfig,
    clip_seed,
    plan_clip,
    read_metadata,
    scene_from_row,
    write_shapes_set,
)
from kinetoscope.shapes.render import render_clip

MIXED = ShapesSetConfig(num=10, sizes=((64, 64), (64, 112), (112, 64)), num_frames=(1, 8), objects=(1, 2), seed=3)


@pytest.fixture(scope="module")
def mixed_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixed")
    write_shapes_set(MIXED, out, workers=1, progress=False)
    return out


def test_one_file_and_one_row_per_clip(mixed_set: Path) -> None:
    rows = read_metadata(mixed_set / "metadata.csv")
    assert len(rows) == MIXED.num
    assert tuple(rows[0]) == COLUMNS
    assert sorted(p.name for p in (mixed_set / "clips").iterdir()) == sorted(Path(r["path"]).name for r in rows)
    assert [p.name for p in mixed_set.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def test_rows_carry_the_ground_truth(mixed_set: Path) -> None:
    for row in read_metadata(mixed_set / "metadata.csv"):
        scene = scene_from_row(row)
        assert row["text"] == spec.canonical_caption(scene)
        assert row["background"] == scene.background
        assert [set(o) for o in json.loads(row["objects"])] == [{"color", "shape", "size", "direction", "speed"}] * len(
            scene.objects
        )
        height, width = int(row["height"]), int(row["width"])
        assert float(row["aspect_ratio"]) == pytest.approx(height / width, abs=1e-4)
        assert int(row["resolution"]) == height * width
        assert float(row["fps"]) == spec.FPS


def test_files_decode_to_what_the_row_says_and_rerender_from_the_seed(mixed_set: Path) -> None:
    for row in read_metadata(mixed_set / "metadata.csv"):
        frames, fps = read_video(mixed_set / row["path"])
        num_frames, height, width = int(row["num_frames"]), int(row["height"]), int(row["width"])
        assert frames.shape == (num_frames, height, width, 3)
        assert row["path"].endswith(".png" if num_frames == 1 else ".mp4")
        assert fps == pytest.approx(spec.FPS)
        scene, seed = scene_from_row(row), int(row["seed"])
        clip = render_clip(scene, height=height, width=width, num_frames=num_frames, seed=seed)
        error = np.abs(frames.astype(int) - clip.frames).mean()
        assert error < (0.01 if num_frames == 1 else 2.0)  # png is lossless, H.264 at crf 18 nearly so


def test_mixes_every_size_duration_and_object_count(mixed_set: Path) -> None:
    rows = read_metadata(mixed_set / "metadata.csv")
    assert {(int(r["height"]), int(r["width"])) for r in rows} == set(MIXED.sizes)
    assert {int(r["num_frames"]) for r in rows} == set(MIXED.num_frames)
    assert {len(json.loads(r["objects"])) for r in rows} == {1, 2}


def test_same_set_whatever_the_number_of_workers(tmp_path: Path) -> None:
    # GIF, not mp4: H.264 files from the same frames can differ run to run; GIF files cannot.
    config = dataclasses.replace(MIXED, format="gif")
    write_shapes_set(config, tmp_path / "serial", workers=1, progress=False)
    write_shapes_set(config, tmp_path / "parallel", workers=2, progress=False)
    serial = read_metadata(tmp_path / "serial" / "metadata.csv")
    assert serial == read_metadata(tmp_path / "parallel" / "metadata.csv")
    for row in serial:
        assert (tmp_path / "serial" / row["path"]).read_bytes() == (tmp_path / "parallel" / row["path"]).read_bytes()


def test_gif_format_and_seeds(tmp_path: Path) -> None:
    config = ShapesSetConfig(num=2, num_frames=(6,), format="gif", seed=8)
    write_shapes_set(config, tmp_path, progress=False)
    rows = read_metadata(tmp_path / "metadata.csv")
    assert [r["path"] for r in rows] == ["clips/000000.gif", "clips/000001.gif"]
    for row in rows:
        frames, _ = read_video(tmp_path / row["path"])
        assert frames.shape == (6, 64, 64, 3)
    assert [int(r["seed"]) for r in rows] == [clip_seed(8, 0), clip_seed(8, 1)]


def test_plans_depend_on_set_seed_and_index_only() -> None:
    assert plan_clip(MIXED, 4) == plan_clip(MIXED, 4)
    assert len({clip_seed(s, i) for s in range(3) for i in range(50)}) == 150
    other = ShapesSetConfig(num=10, sizes=MIXED.sizes, num_frames=MIXED.num_frames, seed=4)
    assert [plan_clip(MIXED, i) for i in range(10)] != [plan_clip(other, i) for i in range(10)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num": 0}, "num 0"),
        ({"sizes": ((64, 60),)}, "width 60"),
        ({"sizes": ((24, 64),)}, "height 24"),
        ({"num_frames": (65,)}, "num_frames 65"),
        ({"objects": (3,)}, "objects 3"),
        ({"format": "avi"}, "format 'avi'"),
        ({"seed": -1}, "seed -1"),
    ],
)
def test_config_names_the_bad_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShapesSetConfig(**kwargs)

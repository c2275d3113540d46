"""The Shapes World analyzer: segmentation, detection, judgements against prompts, and ``eval clip``.

Clips come from the reference renderer, so every verdict has a ground truth to be held to.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from kinetoscope.io.video import read_video, write_video
from kinetoscope.shapes import spec
from kinetoscope.shapes.analyzer import ClipReport, analyze_clip, detect_objects, detect_scene, judge_scene
from kinetoscope.shapes.prompts import parse_prompt
from kinetoscope.shapes.render import draw, render_clip, render_random_clip, trajectory
from kinetoscope.shapes.segment import label_components, segment
from kinetoscope.shapes.spec import ObjectQuery, ObjectSpec, PromptQuery, SceneSpec


def _rate(reports: list[ClipReport]) -> float:
    return sum(r.all_correct for r in reports) / len(reports)


def _judge_rendered(seeds, *, num_objects: int, height: int = 64, width: int = 64, num_frames: int = 16):
    reports = []
    for seed in seeds:
        clip = render_random_clip(seed, height=height, width=width, num_frames=num_frames, num_objects=num_objects)
        reports.append(analyze_clip(clip.frames, PromptQuery.from_scene(clip.scene)))
    return reports


def _failures(reports: list[ClipReport]) -> list[str]:
    """Names of the wrong attributes per failing clip, for assertion messages."""
    out = []
    for i, r in enumerate(reports):
        if not r.all_correct:
            wrong = [a.name for o in r.objects for a in o.attributes if not a.ok]
            out.append(f"clip {i}: count ok={r.count.ok} background ok={r.background.ok} wrong={wrong}")
    return out


# --- segmentation -------------------------------------------------------------------------


def test_label_components_matches_flood_fill():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 24, 24)) < 0.45
    labels = label_components(masks)
    for mask, label in zip(masks, labels):
        seen = np.zeros(mask.shape, dtype=int)
        count = 0
        for start in zip(*np.nonzero(mask)):
            if seen[start]:
                continue
            count += 1
            stack = [start]
            seen[start] = count
            while stack:
                y, x = stack.pop()
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if 0 <= ny < 24 and 0 <= nx < 24 and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = count
                            stack.append((ny, nx))
        pairs = set(zip(seen[mask], label[mask]))
        assert len(pairs) == count == len(np.unique(label[mask])), "same partition as an 8-connected flood fill"
    assert (labels[~masks] == 0).all()


@pytest.mark.parametrize("background", list(spec.BACKGROUNDS))
def test_segment_names_background_and_keeps_anti_aliased_area(background):
    scene = SceneSpec(background, (ObjectSpec("yellow", "circle", "large", "right", "slowly"),))
    clip = render_clip(scene, seed=3)
    seg = segment(clip.frames)
    assert seg.background == background
    color = list(spec.COLORS).index("yellow")
    assert set(np.unique(seg.labels)) <= {-1, color}
    # Foreground means blend weight >= 1/2, so the mask keeps the disk's area to about a pixel per row.
    side = clip.boxes[0, 0, 2] - clip.boxes[0, 0, 0]
    areas = (seg.labels == color).sum(axis=(1, 2))
    assert np.abs(areas - np.pi / 4 * side**2).max() < side


def test_detect_objects_gives_per_frame_geometry(rendered_clip):
    objects = detect_objects(rendered_clip.frames)
    assert {o.color for o in objects} == {"red", "blue"}
    t, h, w = rendered_clip.frames.shape[:3]
    for obj in objects:
        truth = [o.color for o in rendered_clip.scene.objects].index(obj.color)
        assert obj.masks.shape == (t, h, w) and obj.boxes.shape == (t, 4) and obj.centroids.shape == (t, 2)
        clear = obj.clear
        assert clear.any()
        # Boxes of clear frames hug the true boxes to a pixel; box centres (sub-pixel) to a tenth.
        assert np.abs(obj.boxes[clear] - rendered_clip.boxes[clear, truth]).max() <= 1.0
        true_centers = (rendered_clip.boxes[clear, truth, :2] + rendered_clip.boxes[clear, truth, 2:]) / 2
        assert np.abs(obj.centers[clear] - true_centers).max() < 0.1


# --- reference renders score (nearly) 100% ------------------------------------------------


def test_reference_renders_one_object_64x64():
    reports = _judge_rendered(range(300), num_objects=1)
    assert _rate(reports) >= 0.98, _failures(reports)


@pytest.mark.parametrize("height,width,count", [(64, 112, 60), (112, 64, 60), (32, 32, 60), (128, 128, 30)])
def test_reference_renders_other_canvases(height, width, count):
    reports = _judge_rendered(range(1000, 1000 + count), num_objects=1, height=height, width=width)
    assert _rate(reports) >= 0.98, _failures(reports)


def test_reference_renders_two_objects():
    # Two objects pass through each other; a small one can hide under a large one all clip long.
    reports = _judge_rendered(range(150), num_objects=2)
    assert _rate(reports) >= 0.95, _failures(reports)


def test_reference_renders_survive_h264(tmp_path):
    reports = []
    for seed in range(2000, 2030):
        clip = render_random_clip(seed, num_objects=1)
        path = write_video(tmp_path / f"{seed}.mp4", clip.frames, spec.FPS)
        frames, _ = read_video(path)
        assert frames.shape == clip.frames.shape
        reports.append(analyze_clip(frames, PromptQuery.from_scene(clip.scene)))
    assert _rate(reports) >= 0.95, _failures(reports)


def test_one_frame_clip_skips_motion():
    clip = render_random_clip(7, num_frames=1, num_objects=1)
    report = analyze_clip(clip.frames, PromptQuery.from_scene(clip.scene))
    assert report.all_correct
    for name in ("direction", "speed"):
        result = report.objects[0].attribute(name)
        assert result.ok and result.measured is None and "not applicable" in result.note


# --- wrong attributes are caught --------------------------------------------------------


_VALUES = {
    "color": list(spec.COLORS),
    "shape": list(spec.SHAPES),
    "size": list(spec.SIZES),
    "direction": list(spec.DIRECTIONS),
    "speed": list(spec.SPEEDS),
}


def test_a_changed_attribute_is_marked_wrong():
    rng = np.random.default_rng(5)
    caught = dict.fromkeys([*_VALUES, "background"], 0)
    tried = dict.fromkeys(caught, 0)
    for seed in range(120):
        clip = render_random_clip(seed, num_objects=1 + seed % 2)
        scene = detect_scene(clip.frames)
        query = PromptQuery.from_scene(clip.scene)
        other = str(rng.choice([b for b in spec.BACKGROUNDS if b != query.background]))
        report = judge_scene(scene, dataclasses.replace(query, background=other))
        tried["background"] += 1
        caught["background"] += not report.background.ok and not report.all_correct
        k = int(rng.integers(len(query.objects)))
        target = query.objects[k]
        for name, values in _VALUES.items():
            if name == "speed" and target.direction == "still":
                continue  # a still object's speed is not judged
            taken = {getattr(o, name) for o in query.objects} if name == "color" else {getattr(target, name)}
            changed = dataclasses.replace(target, **{name: str(rng.choice([v for v in values if v not in taken]))})
            objects = query.objects[:k] + (changed,) + query.objects[k + 1 :]
            report = judge_scene(scene, dataclasses.replace(query, objects=objects))
            tried[name] += 1
            caught[name] += not report.objects[k].attribute(name).ok and not report.all_correct
    rates = {name: caught[name] / tried[name] for name in tried}
    assert all(rate == 1.0 for rate in rates.values()), rates


def _reversed(direction: str, axes: tuple[bool, bool]) -> str:
    """``direction`` with its x and/or y component (per ``axes``) reversed."""
    ux, uy = spec.DIRECTIONS[direction]
    target = (-ux if axes[0] else ux, -uy if axes[1] else uy)
    return next(name for name, unit in spec.DIRECTIONS.items() if np.allclose(unit, target))


@pytest.mark.parametrize(
    "obj,near",
    [
        (ObjectSpec("red", "square", "large", "right", "slowly"), ("low", None)),
        (ObjectSpec("blue", "circle", "small", "up", "quickly"), (None, "high")),
        (ObjectSpec("yellow", "triangle", "small", "down-left", "slowly"), ("high", "low")),
        (ObjectSpec("green", "circle", "large", "up-right", "quickly"), ("low", "high")),
    ],
    ids=["right", "up", "down-left", "up-right"],
)
def test_object_leaving_a_wall_is_judged_by_its_motion(obj, near):
    """An object drawn within one step of the wall it moves away from (``near`` per axis: the
    low or high wall, None for mid-frame) is judged by the motion it shows. Its frames are also
    what an object at that wall heading into it would show after bouncing before its first
    step, so a prompt naming the direction with those components reversed is wrong."""
    height = width = 64
    side = obj.side(height, width)
    # Four tenths of a step from the wall: a step towards it would bounce off it first.
    gaps = 0.4 * np.abs(obj.velocity(height, width))
    limits = (width - side, height - side)
    start = tuple(
        limit / 2 if wall is None else gap if wall == "low" else limit - gap
        for wall, gap, limit in zip(near, gaps, limits)
    )
    corners = trajectory(obj, start, height=height, width=width, num_frames=16)
    scene = SceneSpec("black", (obj,))
    frames = draw(scene, np.concatenate([corners, corners + side], axis=1)[:, None], height=height, width=width)
    detection = detect_scene(frames)
    assert [o.direction for o in detection.objects] == [obj.direction]
    query = PromptQuery.from_scene(scene)
    assert judge_scene(detection, query).all_correct
    x_near, y_near = (wall is not None for wall in near)
    for axes in {(x_near, False), (False, y_near), (x_near, y_near)} - {(False, False)}:
        wrong = _reversed(obj.direction, axes)
        objects = (dataclasses.replace(query.objects[0], direction=wrong),)
        report = judge_scene(detection, dataclasses.replace(query, objects=objects))
        direction = report.objects[0].attribute("direction")
        assert not report.all_correct and not direction.ok, wrong
        assert (direction.expected, direction.measured, direction.note) == (wrong, obj.direction, "")


def test_missing_and_extra_objects_fail_the_count(rendered_clip):
    full = PromptQuery.from_scene(rendered_clip.scene)
    one = analyze_clip(rendered_clip.frames, dataclasses.replace(full, objects=full.objects[:1]))
    assert not one.count.ok and not one.all_correct and one.objects[0].ok
    solo = render_clip(SceneSpec("black", rendered_clip.scene.objects[:1]))
    two = analyze_clip(solo.frames, full)
    assert not two.count.ok and not two.all_correct
    missing = two.objects[1]
    assert missing.detected is None and missing.attribute("presence").measured == "absent"


# --- matching and open attributes -------------------------------------------------------


def test_matching_by_colour_ignores_prompt_order(rendered_clip):
    query = PromptQuery.from_scene(rendered_clip.scene)
    swapped = dataclasses.replace(query, objects=query.objects[::-1])
    report = analyze_clip(rendered_clip.frames, swapped)
    assert report.all_correct
    assert [report.detected[o.detected]["color"] for o in report.objects] == ["blue", "red"]


def test_matching_without_colours_uses_other_attributes(rendered_clip):
    query = PromptQuery(None, (ObjectQuery(shape="square", size="small"), ObjectQuery(shape="circle")))
    report = analyze_clip(rendered_clip.frames, query)
    assert report.all_correct
    assert [report.detected[o.detected]["color"] for o in report.objects] == ["blue", "red"]
    color = report.objects[0].attribute("color")
    assert color.expected is None and color.measured == "blue" and color.ok


def test_prompt_without_objects_asks_for_one_or_two(rendered_clip):
    report = analyze_clip(rendered_clip.frames, parse_prompt("something nice"))
    assert report.all_correct and report.count.expected is None and report.count.measured == "2"
    assert len(report.objects) == 2


def test_still_object_speed_is_not_judged():
    scene = SceneSpec("gray", (ObjectSpec("purple", "triangle", "small", "still", "slowly"),))
    clip = render_clip(scene, seed=2)
    report = analyze_clip(clip.frames, parse_prompt("a small purple triangle staying still, moving fast"))
    speed = report.objects[0].attribute("speed")
    assert speed.ok and speed.value == pytest.approx(0.0, abs=1e-3) and "still" in speed.note
    assert report.objects[0].attribute("direction").measured == "still"


# --- robustness -------------------------------------------------------------------------


def test_gaussian_noise_keeps_verdicts():
    rng = np.random.default_rng(0)
    for seed in range(40):
        clip = render_random_clip(seed, num_objects=1 + seed % 2)
        query = PromptQuery.from_scene(clip.scene)
        noisy = np.clip(clip.frames + rng.normal(0, 8, clip.frames.shape), 0, 255).astype(np.uint8)
        clean, rough = analyze_clip(clip.frames, query), analyze_clip(noisy, query)
        assert rough.all_correct == clean.all_correct, (seed, _failures([rough]))
        assert [o.attribute(n).measured for o in rough.objects for n in _VALUES] == [
            o.attribute(n).measured for o in clean.objects for n in _VALUES
        ]


def test_blank_clip_fails_the_count_without_crashing():
    report = analyze_clip(np.zeros((16, 64, 64, 3), np.uint8), parse_prompt("a red ball moving left"))
    assert not report.all_correct and not report.count.ok and report.count.measured == "0"
    assert report.background.measured == "black"
    assert report.objects[0].attribute("presence").measured == "absent"


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((0, 64, 64, 3), np.uint8),
        np.zeros((3, 1, 1, 3), np.uint8),
        np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3)).astype(np.uint8),
        np.random.default_rng(1).random((4, 32, 32, 3)),  # float in [0, 1]
        np.full((2, 16, 16, 3), np.nan),
        np.zeros((2, 16, 16, 4), np.uint8),  # RGBA
    ],
    ids=["no-frames", "one-pixel", "uniform-noise", "float", "nan", "rgba"],
)
def test_odd_input_gives_a_report(frames):
    report = analyze_clip(frames, parse_prompt("a large red ball moving slowly to the left on black"))
    assert not report.all_correct
    json.dumps(report.to_dict())


def test_colour_change_halfway_fails_presence():
    clip = render_clip(SceneSpec("white", (ObjectSpec("red", "square", "large", "right", "slowly"),)), seed=4)
    frames = clip.frames.copy()
    red = np.all(frames[8:] == spec.COLORS["red"], axis=-1)
    frames[8:][red] = spec.COLORS["blue"]
    report = analyze_clip(frames, PromptQuery.from_scene(clip.scene))
    presence = report.objects[0].attribute("presence")
    assert not presence.ok and presence.value == pytest.approx(0.5, abs=0.07)
    assert not report.all_correct


def test_report_to_dict_is_json(rendered_clip):
    report = analyze_clip(rendered_clip.frames, PromptQuery.from_scene(rendered_clip.scene))
    record = json.loads(json.dumps(report.to_dict()))
    assert record["all_correct"] is True
    assert [a["name"] for a in record["objects"][0]["attributes"]] == [
        "presence",
        "color",
        "shape",
        "size",
        "direction",
        "speed",
        "area",
    ]
    assert record["objects"][0]["attributes"][3]["value"] == pytest.approx(0.35, abs=0.03)


# --- kinetoscope eval clip ----------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    scene = SceneSpec("gray", (ObjectSpec("green", "triangle", "large", "left", "quickly"),))
    clip = render_clip(scene, seed=11)
    return write_video(tmp_path_factory.mktemp("eval") / "clip.mp4", clip.frames, spec.FPS)


def test_cli_eval_clip_table(run_cli, clip_file):
    good = run_cli("eval", "clip", clip_file, "--prompt", "a big green triangle moving fast to the left")
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().endswith("all correct: yes")
    assert "object 1 (green triangle): ok" in good.stdout
    bad = run_cli("eval", "clip", clip_file, "--prompt", "a small green ball going right on a white background")
    assert bad.returncode == 0, bad.stderr
    assert bad.stdout.strip().endswith("all correct: no")
    rows = {line.split()[0]: line.split() for line in bad.stdout.splitlines() if line.startswith(("  ", "b"))}
    assert rows["background"][1:4] == ["white", "gray", "NO"]
    assert rows["shape"][1:3] == ["circle", "triangle"] and rows["size"][1:3] == ["small", "large"]


def test_cli_eval_clip_json(run_cli, clip_file):
    result = run_cli("eval", "clip", clip_file, "--prompt", "a green triangle", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["all_correct"] is True and record["count"]["measured"] == "1"
    assert record["detected"][0]["direction"] == "left"


def test_cli_eval_clip_bad_input(run_cli, clip_file, tmp_path):
    missing = run_cli("eval", "clip", tmp_path / "missing.mp4", "--prompt", "a red ball")
    assert missing.returncode == 2 and missing.stderr.startswith("kinetoscope: error:")
    assert "Traceback" not in missing.stderr
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 50)
    broken = run_cli("eval", "clip", corrupt, "--prompt", "a red ball")
    assert broken.returncode == 2 and "Traceback" not in broken.stderr and "corrupt.mp4" in broken.stderr
    empty = run_cli("eval", "clip", clip_file, "--prompt", "   ")
    assert empty.returncode == 2 and "--prompt" in empty.stderr
    no_task = run_cli("eval")
    assert no_task.returncode == 2 and "EVAL_COMMAND" in no_task.stderr


def test_misses_say_what_was_measured_instead_of_what_was_asked() -> None:
    scene = SceneSpec("black", (ObjectSpec("red", "square", "large", "right", "slowly"),))
    frames = render_clip(scene, seed=3).frames
    assert analyze_clip(frames, parse_prompt("a large red square moving slowly right on black")).misses() == []
    wrong = analyze_clip(frames, parse_prompt("a large blue circle moving slowly left on white")).misses()
    asked = {(m["attribute"], m["expected"], m["measured"]) for m in wrong}
    assert asked == {("background", "white", "black"), ("color", "blue", "red"), ("shape", "circle", "square"),
                     ("direction", "left", "right")}  # fmt: skip
    blank = analyze_clip(np.zeros_like(frames), parse_prompt("a red square on black")).misses()
    # Nothing to match: the count and the one missing object, not every attribute of it.
    assert [(m["object"], m["attribute"], m["measured"]) for m in blank] == [(None, "count", "0"), (0, "presence", "absent")]

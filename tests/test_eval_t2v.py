"""The text-to-video suite: its prompts, and the judge on renders that are right and wrong."""

from __future__ import annotations

import numpy as np

from kinetoscope.evaluation.t2v import SuiteResult, build_suite, paraphrase, run_suite, stated_query
from kinetoscope.shapes.prompts import parse_prompt
from kinetoscope.shapes.render import render_clip, sample_scene
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

HELD_OUT = ({"color": "purple", "shape": "triangle"},)


def test_suite_has_every_group_and_paraphrases_parse_back():
    suite = build_suite(6, HELD_OUT, seed=0)
    groups = {(len(s.scene.objects), s.kind) for s in suite}
    assert groups == {(n, k) for n in (1, 2) for k in ("canonical", "paraphrase", "held-out")}
    for item in suite:
        assert parse_prompt(item.prompt) == stated_query(item.scene)
    held = [s for s in suite if s.kind == "held-out"]
    assert all(s.scene.objects[0].color == "purple" and s.scene.objects[0].shape == "triangle" for s in held)
    assert build_suite(6, HELD_OUT, seed=0) == suite


def test_paraphrases_are_not_canonical():
    rng = np.random.default_rng(0)
    texts = [paraphrase(sample_scene(rng, num_objects=1), rng) for _ in range(20)]
    assert sum(t is not None for t in texts) >= 15
    assert not any(t and t.startswith("A ") for t in texts)


def _render(items):
    return [render_clip(i.scene, seed=i.seed).frames for i in items]


def _changed(items, attribute: str, mapping: dict[str, str]):
    """Renders of each item's scene with every object's ``attribute`` mapped through ``mapping``."""
    out = []
    for item in items:
        objects = tuple(ObjectSpec(**{**o.__dict__, attribute: mapping[getattr(o, attribute)]}) for o in item.scene.objects)
        out.append(render_clip(SceneSpec(item.scene.background, objects), seed=item.seed).frames)
    return out


def _wrong_colour(items):
    swap = {"red": "blue", "blue": "red", "green": "yellow", "yellow": "green", "orange": "purple", "purple": "orange"}
    return _changed(items, "color", swap)


def test_true_renders_score_high_and_wrong_colours_score_zero():
    suite = build_suite(8, HELD_OUT, seed=1)
    right = run_suite(_render, suite, progress=False)
    assert right.accuracy(1)["all_correct"] >= 0.95
    assert right.accuracy(2)["all_correct"] >= 0.8
    wrong = run_suite(_wrong_colour, suite, progress=False)
    assert wrong.accuracy(1)["color"] == 0.0 and wrong.accuracy(1)["all_correct"] == 0.0


def _reversed(items):
    turn = {"right": "left", "left": "right", "up": "down", "down": "up", "up-right": "down-left",
            "down-left": "up-right", "up-left": "down-right", "down-right": "up-left", "still": "still"}  # fmt: skip
    return _changed(items, "direction", turn)


def test_misses_name_what_was_measured_instead():
    suite = [s for s in build_suite(8, HELD_OUT, seed=2) if len(s.scene.objects) == 1]
    colours = run_suite(_wrong_colour, suite, progress=False).misses(1)
    # A recoloured object is still the one asked for (matching falls back to the other
    # attributes), so its colour is the miss, named with both colours.
    assert colours[("color", "red", "blue")] + colours[("color", "blue", "red")] >= 1
    assert sum(n for (name, _, _), n in colours.items() if name == "color") == len(suite)
    reversed_ = run_suite(_reversed, suite, progress=False)
    moving = [s for s in suite if s.scene.objects[0].direction != "still"]
    misses = reversed_.misses(1)
    assert sum(n for (name, _, _), n in misses.items() if name == "direction") >= len(moving) - 2
    opposite = {("right", "left"), ("left", "right"), ("up", "down"), ("down", "up")}
    straight = [(e, m) for (name, e, m) in misses if name == "direction" and e in dict(opposite)]
    assert all((e, m) in opposite for e, m in straight)
    assert all(row["misses"] == [] for row in run_suite(_render, suite, progress=False).rows if row["all_correct"])


def _small_ones_shrunk(items):
    """True renders, except that small moving objects are drawn large (a size miss)."""
    out = []
    for item in items:
        moving_small = [o.size == "small" and o.direction != "still" for o in item.scene.objects]
        grown = tuple(ObjectSpec(**{**o.__dict__, "size": "large"}) if m else o for o, m in zip(item.scene.objects, moving_small))
        out.append(render_clip(SceneSpec(item.scene.background, grown), seed=item.seed).frames)
    return out


def test_one_object_accuracy_splits_by_the_asked_size_and_speed():
    suite = [s for s in build_suite(12, HELD_OUT, seed=3) if len(s.scene.objects) == 1]
    groups = run_suite(_small_ones_shrunk, suite, progress=False).by_size_and_speed()
    asked = {f"{s.scene.objects[0].size} {'still' if s.scene.objects[0].direction == 'still' else s.scene.objects[0].speed}" for s in suite}
    assert set(groups) == asked and sum(g["prompts"] for g in groups.values()) == len(suite)
    assert {"small quickly", "small slowly", "large quickly"} <= set(groups)
    assert groups["small quickly"]["all_correct"] == groups["small slowly"]["all_correct"] == 0.0
    assert groups["large quickly"]["all_correct"] >= 0.9


def _row(directions, misses):
    asked = [{"size": "large", "speed": "still" if d == "still" else "slowly", "direction": d} for d in directions]
    return {"objects": len(directions), "asked": asked,
            "misses": [{"object": i, "attribute": "direction", "expected": directions[i], "measured": m} for i, m in misses]}  # fmt: skip


def test_still_objects_count_who_moved_and_whether_toward_the_mover():
    rows = [
        _row(["still"], []),                               # alone, kept still
        _row(["still"], [(0, "up")]),                      # alone, moved
        _row(["still", "left"], [(0, "left")]),            # beside a mover, moved its way
        _row(["up-left", "still"], [(1, "down-left")]),    # moved 90 degrees off the mover's way
        _row(["still", "right"], [(0, "up-right")]),       # 45 degrees off the mover's way
        _row(["still", "down"], [(0, None)]),              # not found: not counted as moving
        _row(["still", "still"], [(0, "up")]),             # nobody moves beside it: neither group
        _row(["left", "right"], [(0, "right")]),           # no still object
        {"objects": 1, "asked": [{"size": "large", "speed": "still"}], "misses": []},  # an old row: left out
    ]
    still = SuiteResult(rows).still_objects()
    assert still["alone"] == {"objects": 2, "moved": 1}
    assert still["beside_a_mover"] == {"objects": 4, "moved": 3, "toward_mover": 2}

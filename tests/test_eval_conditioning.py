"""The conditioning measures on Shapes World renders: PSNR, seams, directions after a bounce, the
edit judge, and the suite (true frames pass every task; wrong outputs fail)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kinetoscope.evaluation.conditioning import MAX_PSNR, check_seams, judge_edit, psnr, segment_query
from kinetoscope.evaluation.conditioning_suite import (
    TASKS,
    build_conditioning_suite,
    judge_case,
    run_conditioning_suite,
)
from kinetoscope.shapes.render import render_clip
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

QUICK = SceneSpec("black", (ObjectSpec("yellow", "square", "small", "right", "quickly"),))
TWO = SceneSpec(
    "gray",
    (ObjectSpec("orange", "circle", "large", "down", "slowly"), ObjectSpec("purple", "triangle", "small", "left", "quickly")),
)


def test_psnr_of_identical_frames_is_the_cap_and_noise_lowers_it(rendered_clip):
    frames = rendered_clip.frames
    assert psnr(frames, frames.copy()) == MAX_PSNR
    noisy = np.clip(frames.astype(int) + np.random.default_rng(0).integers(-8, 9, frames.shape), 0, 255).astype(np.uint8)
    assert 28 < psnr(frames, noisy) < 40


@pytest.mark.parametrize("scene", [QUICK, TWO])
def test_a_true_clip_is_continuous_at_every_frame(scene):
    clip = render_clip(scene, num_frames=40, seed=2)
    checks = check_seams(clip.frames, range(1, 40))
    assert all(c.ok for c in checks)
    judged = [o for c in checks for o in c.objects if o.jump is not None]
    assert len(judged) > 30 and all(o.jump <= o.allowed for o in judged)


def test_joining_unrelated_clips_or_skipping_frames_breaks_the_seam():
    a = render_clip(QUICK, num_frames=16, seed=0).frames
    b = render_clip(TWO, num_frames=16, seed=1).frames
    joined = check_seams(np.concatenate([a, b]), [16])[0]
    assert not joined.ok and any(o.note == "on one side only" for o in joined.objects)
    clip = render_clip(QUICK, num_frames=24, seed=3).frames
    skipped = check_seams(np.concatenate([clip[:8], clip[14:]]), [8])[0]  # six steps in one
    assert not skipped.ok and skipped.objects[0].jump > 3 * skipped.objects[0].speed


def test_segment_query_follows_the_bounce():
    clip = render_clip(QUICK, num_frames=40, seed=0)
    steps = np.diff(clip.boxes[:, 0, 0])
    bounce = int(np.argmax(steps < 0))  # the first step to the left
    assert bounce > 0
    assert segment_query(QUICK, clip.boxes, 0).objects[0].direction == "right"
    assert segment_query(QUICK, clip.boxes, bounce).objects[0].direction == "left"


def test_edit_judge_wants_new_colours_on_the_old_trajectories():
    source = render_clip(TWO, seed=5).frames
    recolored = SceneSpec(TWO.background, (replace(TWO.objects[0], color="green"), replace(TWO.objects[1], color="red")))
    good = judge_edit(source, render_clip(recolored, seed=5).frames, TWO, recolored)
    assert good.ok and good.changed and good.kept and max(good.distances) < 0.5
    unchanged = judge_edit(source, source, TWO, recolored)
    assert not unchanged.ok and not unchanged.changed
    moved = judge_edit(source, render_clip(recolored, seed=6).frames, TWO, recolored)
    assert moved.changed and not moved.kept and not moved.ok


@pytest.fixture(scope="module")
def suite():
    return build_conditioning_suite(2, seed=0)


def test_suite_has_every_task_and_is_deterministic(suite):
    assert [c.task for c in suite] == [t for t in TASKS for _ in range(2)]
    assert [c.prompt for c in build_conditioning_suite(2, seed=0)] == [c.prompt for c in suite]
    extend = next(c for c in suite if c.task == "extend-backward")
    assert extend.video.shape == (16, 64, 64, 3) and extend.new == (0, 16) and extend.given == tuple(range(16, 32))
    edit = next(c for c in suite if c.task == "edit")
    assert all(a.color != b.color for a, b in zip(edit.truth.scene.objects, edit.scene.objects))


def test_a_tasks_cases_do_not_depend_on_which_other_tasks_run(suite):
    # `eval conditioning --tasks extend-backward` must measure the cases the full suite does.
    for task in ("extend-backward", "edit"):
        alone = build_conditioning_suite(2, tasks=(task,), seed=0)
        assert [(c.prompt, c.seed) for c in alone] == [(c.prompt, c.seed) for c in suite if c.task == task]
    assert [c.seed for c in build_conditioning_suite(2, tasks=("edit", "image"), seed=0)] == [
        c.seed for task in ("edit", "image") for c in suite if c.task == task
    ]


def _truth(case):
    return render_clip(case.scene, num_frames=len(case.truth.frames), seed=case.seed).frames


def test_true_frames_pass_every_task(suite):
    summary = run_conditioning_suite(_truth, suite, progress=False).summary()
    assert set(summary) == set(TASKS)
    assert all(entry["passed"] == 1.0 for entry in summary.values())
    assert summary["connect"]["min_given_psnr"] == MAX_PSNR


def test_wrong_outputs_fail(suite):
    def wrong(case):
        frames = _truth(case)
        if case.task == "edit":
            return case.truth.frames  # nothing changed
        if case.task == "extend":
            start = case.new[0]  # the new frames freeze on the last given one
            return np.concatenate([frames[:start], np.repeat(frames[start - 1 : start], len(frames) - start, axis=0)])
        noisy = frames.astype(int) + np.random.default_rng(0).integers(-40, 41, frames.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)  # the given frames do not come back

    rows = run_conditioning_suite(wrong, suite, progress=False).rows
    for case, row in zip(suite, rows):
        if case.task == "edit" or (case.task == "extend" and any(o.direction != "still" for o in case.scene.objects)):
            assert not row["ok"], row
        if case.given and case.task != "extend":
            assert row["given_psnr"] < 28 and not row["ok"], row
    assert not judge_case(suite[0], suite[0].truth.frames[:, :32])["ok"]  # the wrong size

"""Prompt upsampling grounded on given frames: open attributes come from what the frames show."""

from __future__ import annotations

from kinetoscope.shapes.grounding import ground_prompt, recaption_motion
from kinetoscope.shapes.prompts import parse_prompt, upsample_prompt
from kinetoscope.shapes.render import render_clip
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

SCENE = SceneSpec("gray", (ObjectSpec("green", "triangle", "large", "left", "quickly"),))


def test_open_attributes_come_from_the_video():
    clip = render_clip(SCENE, seed=4)
    for seed in range(3):
        assert upsample_prompt("a moving thing", seed=seed, frames=clip.frames) == clip.caption


def test_named_attributes_win_and_the_rest_is_kept():
    clip = render_clip(SCENE, seed=4)
    assert upsample_prompt("a blue ball", frames=clip.frames) == (
        "A large blue circle moves quickly to the left on a gray background."
    )
    assert upsample_prompt("a green triangle on white", frames=clip.frames).endswith("on a white background.")


def test_an_image_grounds_looks_not_motion(rendered_clip):
    query = ground_prompt(parse_prompt("two things"), rendered_clip.frames[:1])
    assert query.background == "black"
    seen = {(o.color, o.shape, o.size) for o in query.objects}
    assert seen == {("red", "circle", "large"), ("blue", "square", "small")}
    assert all(o.direction is None and o.speed is None for o in query.objects)


def test_objects_the_prompt_leaves_out_are_added(rendered_clip):
    caption = upsample_prompt("a red ball", seed=0, frames=rendered_clip.frames)
    assert "small blue square moves quickly down and to the left" in caption
    assert "large red circle moves slowly to the right" in caption


def test_recaption_names_the_direction_a_window_starts_with():
    scene = SceneSpec("black", (ObjectSpec("yellow", "square", "small", "right", "quickly"),
                                ObjectSpec("red", "circle", "large", "still", "slowly")))  # fmt: skip
    clip = render_clip(scene, num_frames=40, seed=0)
    bounce = 1 + int((clip.boxes[1:, 0, 0] < clip.boxes[:-1, 0, 0]).argmax())  # the first frame after turning
    assert recaption_motion(clip.caption, clip.frames[:5]) == clip.caption
    after = recaption_motion(clip.caption, clip.frames[bounce : bounce + 5])
    assert after == clip.caption.replace("to the right", "to the left")
    assert recaption_motion(clip.caption, clip.frames[bounce : bounce + 1]) == clip.caption  # one frame: no motion
    assert recaption_motion("a ball", clip.frames[:5]) == "a ball"  # not a caption: left alone

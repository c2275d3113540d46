"""Prompt upsampling: completing a parse into a scene, the canonical caption it becomes, and the
``caption`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kinetoscope.shapes.prompts import complete_query, motion_contrast_caption, parse_prompt, upsample_prompt
from kinetoscope.shapes.swaps import motion_contrast
from kinetoscope.shapes.spec import BACKGROUNDS, ObjectSpec, PromptQuery, SceneSpec, canonical_caption

from prompt_queries import ATTRIBUTE_VALUES, query  # noqa: E402  (tests/ is on sys.path)

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"


# ---- completion and upsampling ----------------------------------------------------------------

def test_complete_query_keeps_named_attributes_and_fills_the_rest() -> None:
    asked = query("red circle", "square quickly", bg="white")
    for seed in range(200):
        scene = complete_query(asked, np.random.default_rng(seed))
        first, second = scene.objects
        assert scene.background == "white"
        assert (first.color, first.shape) == ("red", "circle")
        assert (second.shape, second.speed) == ("square", "quickly")
        assert second.color != "red"
        assert second.direction != "still"  # a named speed means it moves


def test_complete_query_samples_every_open_value_and_distinct_colours() -> None:
    seen: dict[str, set[str]] = {a: set() for a in ATTRIBUTE_VALUES}
    backgrounds = set()
    for seed in range(400):
        scene = complete_query(query("", ""), np.random.default_rng(seed))
        assert len({o.color for o in scene.objects}) == 2
        backgrounds.add(scene.background)
        for o in scene.objects:
            for attribute in seen:
                seen[attribute].add(getattr(o, attribute))
    assert backgrounds == set(BACKGROUNDS)
    assert seen == {a: set(values) for a, values in ATTRIBUTE_VALUES.items()}


def test_complete_query_gives_one_object_when_none_is_asked() -> None:
    assert len(complete_query(PromptQuery(), np.random.default_rng(0)).objects) == 1
    assert len(complete_query(query(bg="gray"), np.random.default_rng(1)).objects) == 1


def test_complete_query_rejects_what_the_world_cannot_hold() -> None:
    with pytest.raises(ValueError, match="2 red objects"):
        complete_query(parse_prompt("two red balls"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at most 2"):
        complete_query(query("red", "blue", "green"), np.random.default_rng(0))


def test_upsample_is_exactly_the_canonical_caption_when_every_word_is_understood() -> None:
    for seed in range(50):
        caption = upsample_prompt("red ball going left fast", seed=seed)
        parsed = parse_prompt(caption)
        (o,) = parsed.objects
        assert (o.color, o.shape, o.direction, o.speed) == ("red", "circle", "left", "quickly")
        scene = SceneSpec(parsed.background, (ObjectSpec(**o.named()),))
        assert caption == canonical_caption(scene)


def test_upsample_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    assert upsample_prompt("a ball", seed=7) == upsample_prompt("a ball", seed=7)
    assert len({upsample_prompt("a ball", seed=s) for s in range(20)}) > 5


def test_upsample_keeps_unknown_words_after_the_caption() -> None:
    caption = upsample_prompt("a shiny red ball on black in the rain", seed=3)
    assert caption.endswith(" background. shiny rain")
    assert caption.startswith("A ") and " red circle " in caption and "on a black background." in caption


def test_motion_words_without_a_direction_never_sample_still() -> None:
    for seed in range(100):
        assert "stays still" not in upsample_prompt("a bouncing ball", seed=seed)
    assert any("stays still" in upsample_prompt("a ball", seed=s) for s in range(100))


# ---- the CLI ----------------------------------------------------------------------------------

def _caption(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(KINETOSCOPE), "caption", *args], capture_output=True, text=True, timeout=60)


# ---- the contrast of contrastive guidance -----------------------------------------------------

def test_the_motion_contrast_reverses_one_object_and_exchanges_two_objects_motions() -> None:
    kinds = set()
    for seed in range(300):
        rng = np.random.default_rng(seed)
        scene = complete_query(query(*(["", ""] if seed % 2 else [""])), rng)
        contrast = motion_contrast(scene)
        moving = [o for o in scene.objects if o.direction != "still"]
        if not moving:
            assert contrast is None
            continue
        assert contrast is not None and contrast.background == scene.background
        # Every object keeps its colour, shape and size: only motion words change.
        assert [(o.color, o.shape, o.size) for o in contrast.objects] == [(o.color, o.shape, o.size) for o in scene.objects]
        assert canonical_caption(contrast) != canonical_caption(scene)
        # The caption-level contrast parses the caption and says the same, unknown words kept.
        caption = canonical_caption(scene)
        assert motion_contrast_caption(caption) == canonical_caption(contrast)
        assert motion_contrast_caption(caption + " glorp") == canonical_caption(contrast) + " glorp"
        if len(scene.objects) == 1:
            kinds.add("reversed")
            assert contrast.objects[0].speed == moving[0].speed
            assert contrast.objects[0].direction != moving[0].direction
            assert motion_contrast(contrast) == scene  # reversing twice
            continue
        a, b = scene.objects
        if (a.direction, a.speed) == (b.direction, b.speed):
            kinds.add("both reversed")
            assert all(c.direction != o.direction for c, o in zip(contrast.objects, scene.objects))
        else:
            kinds.add("exchanged")
            words = lambda o: "still" if o.direction == "still" else (o.direction, o.speed)  # noqa: E731
            assert [words(o) for o in contrast.objects] == [words(b), words(a)]
    assert kinds >= {"reversed", "exchanged"}
    assert motion_contrast_caption("A small blue square stays still on a white background.") is None
    # Only a canonical caption, every attribute named, has a contrast that differs in motion alone.
    for prompt in ("a red ball moving right", "A red circle moves slowly to the right on a black background."):
        assert motion_contrast_caption(prompt) is None
        assert motion_contrast_caption(upsample_prompt(prompt)) is not None


def test_cli_prints_the_caption() -> None:
    done = _caption("red ball going left fast", "--seed", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout == upsample_prompt("red ball going left fast", seed=4) + "\n"
    assert done.stderr == ""
    assert _caption("red", "ball", "going", "left", "fast", "--seed", "4").stdout == done.stdout


def test_cli_json_and_unknown_word_note() -> None:
    done = _caption("--json", "a shiny red ball on grey")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["query"] == {
        "background": "gray",
        "objects": [{"color": "red", "shape": "circle", "size": None, "direction": None, "speed": None}],
        "unknown_words": ["shiny"],
    }
    assert data["caption"] == upsample_prompt("a shiny red ball on grey", seed=0)
    assert done.stderr.count("\n") == 1 and "shiny" in done.stderr


def test_cli_json_of_a_refined_count() -> None:
    done = _caption("--json", "two fast balls, a red one going left and a blue one heading up on grey")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["query"]["unknown_words"] == [] and data["query"]["background"] == "gray"
    assert [(o["color"], o["shape"], o["direction"], o["speed"]) for o in data["query"]["objects"]] == [
        ("red", "circle", "left", "quickly"),
        ("blue", "circle", "up", "quickly"),
    ]
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [(("",), "TEXT: the prompt is empty"), (("  \t ",), "TEXT: the prompt is empty"),
     (("two red balls",), "never share a colour"), (("ball", "--seed", "-1"), "--seed")],
)  # fmt: skip
def test_cli_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    done = _caption(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("kinetoscope: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1


def test_cli_caption_imports_neither_torch_nor_numpy_at_module_top() -> None:
    code = "import sys, kinetoscope.cli.caption; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr

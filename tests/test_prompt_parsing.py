"""Prompt parsing: the parser's phrase families (synonyms, directions, word order, counts and
referents, punctuation) and exact round trips of canonical captions (paraphrases of known scenes
are in test_prompt_paraphrases.py)."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from kinetoscope.shapes.prompts import parse_prompt, upsample_prompt
from kinetoscope.shapes.spec import (
    BACKGROUNDS,
    COLORS,
    DIRECTIONS,
    SHAPES,
    SIZES,
    SPEEDS,
    ObjectSpec,
    PromptQuery,
    SceneSpec,
    canonical_caption,
)

from prompt_queries import query  # noqa: E402  (tests/ is on sys.path)


def from_caption(scene: SceneSpec) -> PromptQuery:
    """What parsing the canonical caption must give: a still object's caption names no speed."""
    full = PromptQuery.from_scene(scene)
    return replace(full, objects=tuple(replace(o, speed=None) if o.direction == "still" else o for o in full.objects))


ALL_OBJECTS = [ObjectSpec(*a) for a in itertools.product(COLORS, SHAPES, SIZES, DIRECTIONS, SPEEDS)]


# ---- synonyms ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("word", "shape"),
    [("circle", "circle"), ("ball", "circle"), ("disk", "circle"), ("disc", "circle"), ("dot", "circle"),
     ("sphere", "circle"), ("round thing", "circle"), ("circular object", "circle"),
     ("square", "square"), ("box", "square"), ("block", "square"), ("cube", "square"), ("square block", "square"),
     ("triangle", "triangle"), ("pyramid", "triangle"), ("triangular shape", "triangle")],
)  # fmt: skip
def test_shape_synonyms(word: str, shape: str) -> None:
    assert parse_prompt(f"a red {word} moving left") == query(f"red {shape} left")


@pytest.mark.parametrize(
    ("word", "value"),
    [("red", "red"), ("orange", "orange"), ("yellow", "yellow"), ("green", "green"), ("blue", "blue"),
     ("purple", "purple"), ("violet", "purple"), ("crimson", "red"), ("scarlet", "red"),
     ("big", "large"), ("huge", "large"), ("large", "large"), ("giant", "large"), ("enormous", "large"),
     ("small", "small"), ("tiny", "small"), ("little", "small"), ("mini", "small")],
)  # fmt: skip
def test_colour_and_size_synonyms(word: str, value: str) -> None:
    assert parse_prompt(f"a {word} triangle") == query(f"{value} triangle")


@pytest.mark.parametrize(
    ("phrase", "speed"),
    [("fast", "quickly"), ("quick", "quickly"), ("quickly", "quickly"), ("rapidly", "quickly"),
     ("speedy", "quickly"), ("swiftly", "quickly"), ("at high speed", "quickly"),
     ("slow", "slowly"), ("slowly", "slowly"), ("gently", "slowly"), ("leisurely", "slowly"),
     ("lazily", "slowly"), ("at a slow pace", "slowly")],
)  # fmt: skip
def test_speed_synonyms(phrase: str, speed: str) -> None:
    assert parse_prompt(f"a ball moving up {phrase}") == query(f"circle up {speed}")
    assert parse_prompt(f"{phrase}, a ball moving up") == query(f"circle up {speed}")


@pytest.mark.parametrize(
    "phrase",
    ["stays still", "still", "static", "is stationary", "motionless", "not moving", "is not moving",
     "doesn't move", "does not move", "doesn\u2019t move", "at rest", "that stays put", "standing still",
     "unmoving", "which is resting"],
)  # fmt: skip
def test_still_phrases(phrase: str) -> None:
    assert parse_prompt(f"a green box {phrase}") == query("green square still")


# ---- directions -------------------------------------------------------------------------------

DIRECTION_PHRASES = {
    "right": ["right", "rightward", "rightwards", "to the right", "going right", "heading east", "moves right",
              "eastward"],
    "left": ["left", "leftward", "leftwards", "to the left", "going left", "heading west", "left-moving"],
    "up": ["up", "upward", "upwards", "heading up", "going north", "rising", "towards the top"],
    "down": ["down", "downward", "downwards", "moves down", "falling", "south", "to the bottom"],
    "up-right": ["up and to the right", "up-right", "up right", "upper right", "towards the top right",
                 "diagonally up and right", "northeast", "north-east", "right and up", "to the top-right corner"],
    "up-left": ["up and to the left", "up-left", "upper left", "north west", "diagonally up-left", "left and up",
                "toward the top left"],
    "down-right": ["down and to the right", "down-right", "lower right", "southeast", "to the bottom right",
                   "diagonally down and to the right"],
    "down-left": ["down and to the left", "down and left", "down-left", "lower left", "southwest",
                  "to the bottom left", "towards the bottom-left"],
}  # fmt: skip


@pytest.mark.parametrize(
    ("phrase", "direction"), [(p, d) for d, phrases in DIRECTION_PHRASES.items() for p in phrases]
)
def test_direction_phrasings(phrase: str, direction: str) -> None:
    assert parse_prompt(f"a blue ball {phrase}") == query(f"blue circle {direction}")
    assert parse_prompt(f"{phrase} blue ball") == query(f"blue circle {direction}")


def test_directions_of_two_objects_do_not_merge() -> None:
    assert parse_prompt("a ball moving up and a box moving left") == query("circle up", "square left")
    assert parse_prompt("a ball moving up and the box going right") == query("circle up", "square right")


# ---- word order -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["red ball moving left fast", "moving left fast, a red ball", "fast leftward red dot", "ball, red, fast, leftward",
     "a red ball that moves quickly to the left", "leftwards, quickly: a red disc", "red fast left ball",
     "quickly moving to the left is a red circle", "A ball. It is red. It moves left, fast."],
)  # fmt: skip
def test_any_word_order(text: str) -> None:
    assert parse_prompt(text) == query("red circle left quickly")


# ---- backgrounds ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "background"),
    [("a ball on a white background", "white"), ("a ball on black", "black"), ("a ball, white backdrop", "white"),
     ("ball, grey bg", "gray"), ("a black background with a ball", "black"), ("the background is gray: a ball", "gray"),
     ("a ball against white", "white"), ("a ball over a grey canvas", "gray"), ("ball on black-background", "black")],
)  # fmt: skip
def test_backgrounds(text: str, background: str) -> None:
    assert parse_prompt(text) == query("circle", bg=background)


def test_background_colour_on_an_object_is_not_understood() -> None:
    assert parse_prompt("a white ball") == query("circle", unknown=("white",))
    assert parse_prompt("a gray box on black") == query("square", bg="black", unknown=("gray",))
    assert parse_prompt("a Black triangle on a white background") == query("triangle", bg="white", unknown=("Black",))


def test_background_alone_gives_no_object_and_a_second_background_is_unknown() -> None:
    assert parse_prompt("on white") == query(bg="white")
    assert parse_prompt("on black, then on a white background") == query(bg="black", unknown=("white", "background"))


# ---- plurals and counts -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [("two balls", query("circle", "circle")),
     ("2 squares", query("square", "square")),
     ("a pair of triangles", query("triangle", "triangle")),
     ("a couple of small dots", query("small circle", "small circle")),
     ("red and blue squares", query("red square", "blue square")),
     ("red and green balls moving up", query("red circle up", "green circle up")),
     ("a red ball and a blue box", query("red circle", "blue square")),
     ("a red ball moving left and a green square moving up", query("red circle left", "green square up")),
     ("a small red and a large blue ball", query("small red circle", "large blue circle")),
     ("two boxes, one red and one blue", query("red square", "blue square")),
     ("a red one and a blue one", query("red", "blue")),
     ("one big triangle", query("large triangle")),
     ("a ball that is red and a big blue box", query("red circle", "large blue square")),
     ("a fast red ball and a slow blue ball", query("red circle quickly", "blue circle slowly")),
     ("two red balls", query("red circle", "red circle"))],
)  # fmt: skip
def test_plurals_and_counts(text: str, expected: PromptQuery) -> None:
    assert parse_prompt(text) == expected


def test_more_than_two_objects_keeps_the_first_two_and_the_rest_as_unknown_words() -> None:
    assert parse_prompt("three balls") == query("circle", "circle", unknown=("three",))
    assert parse_prompt("red, blue and green balls") == query("red circle", "blue circle", unknown=("green",))
    assert parse_prompt("a box and two balls") == query("square", "circle", unknown=("two",))
    assert parse_prompt("a ball, a box and a green triangle moving left") == query(
        "circle", "square", unknown=("green", "triangle", "moving", "left")
    )


# ---- "one", "the other", "the first": refining counted objects and pronouns ------------------

REFINEMENTS = [
    ("two balls, a red one and a blue one", query("red circle", "blue circle")),
    ("two balls: a red one going left and a blue one going up", query("red circle left", "blue circle up")),
    ("two fast balls, a red one going left and a blue one heading up on grey",
     query("red circle left quickly", "blue circle up quickly", bg="gray")),
    ("two squares, one red and one green", query("red square", "green square")),
    ("two squares, one moving left, the other moving up", query("square left", "square up")),
    ("two triangles: the first red, the second blue", query("red triangle", "blue triangle")),
    ("a pair of dots, one moving left and the other one moving right", query("circle left", "circle right")),
    ("2 squares: one big and red, one small and green", query("large red square", "small green square")),
    # The plural's words go to both, each refinement's only to its own object.
    ("two squares, one moving left, the other red", query("square left", "red square")),
    ("two small balls, one red", query("small red circle", "small circle")),
    # An ordinal picks its object; "the other" takes the one not yet described.
    ("a pair of tiny dots, the second one green and the other one purple",
     query("small purple circle", "small green circle")),
    ("two triangles, the latter going up, the former going down", query("triangle down", "triangle up")),
    ("two balls, one of them red, the other blue", query("red circle", "blue circle")),
    ("two balls. The first is red.", query("red circle", "circle")),
    # A count of open shapes, then phrases that name them.
    ("two things: a red ball and a blue box", query("red circle", "blue square")),
    ("two shapes, one yellow triangle and one orange ball moving left",
     query("yellow triangle", "orange circle left")),
    ("red and blue squares, one moving left, the other moving up", query("red square left", "blue square up")),
    # "both" or "each" hands what follows to every object again.
    ("2 squares: one red moving left and one blue, both fast", query("red square left quickly", "blue square quickly")),
    # A list of single objects that fills the world: bare referents describe them in order.
    ("a ball and a box, the first moving left, the second moving up", query("circle left", "square up")),
    ("a ball and a box, one red, the other green", query("red circle", "green square")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), REFINEMENTS, ids=[t for t, _ in REFINEMENTS])
def test_phrases_after_a_count_describe_the_counted_objects(text: str, expected: PromptQuery) -> None:
    assert parse_prompt(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a red ball going left and a blue one heading up", query("red circle left", "blue circle up")),
     ("a big red square and a small one", query("large red square", "small square")),
     ("a red ball and another moving left", query("red circle", "circle left")),
     ("a tiny box, then one that stays still", query("small square", "square still")),
     # Only the shape carries over; the pronoun's own shape word wins.
     ("a red ball and a square one", query("red circle", "square")),
     # Nothing named before: the shape stays open.
     ("a red one and a blue one", query("red", "blue")),
     ("a red thing and a blue one", query("red", "blue"))],
)  # fmt: skip
def test_one_as_a_pronoun_takes_the_shape_named_before(text: str, expected: PromptQuery) -> None:
    assert parse_prompt(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("two squares, one red, one green, one blue", query("red square", "green square", unknown=("one", "blue"))),
     ("two balls and a red one", query("circle", "circle", unknown=("red", "one"))),
     ("two red balls, a blue one", query("red circle", "red circle", unknown=("blue", "one"))),
     ("two balls, a box", query("circle", "circle", unknown=("box",))),
     ("a ball, a box and a green one", query("circle", "square", unknown=("green", "one"))),
     ("a box and two balls, the first red, the second blue",
      query("square", "red circle", unknown=("two", "the", "second", "blue")))],
)  # fmt: skip
def test_objects_past_the_counted_ones_are_unknown_words(text: str, expected: PromptQuery) -> None:
    assert parse_prompt(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("one big red ball", query("large red circle")),
     ("one moving left", query("left")),
     ("one or two balls", query("circle", "circle")),
     ("a red ball moving left, in one frame", query("red circle left")),
     ("a ball that moves to the other side", query("circle")),
     ("a red ball bouncing from one side to the other", query("red circle")),
     ("the first frame shows a red ball", query("red circle")),
     ("a ball and a box moving toward each other", query("circle", "square")),
     ("a red ball. the other ball is blue", query("red circle", "blue circle"))],
)  # fmt: skip
def test_one_and_referents_that_add_or_name_nothing_new(text: str, expected: PromptQuery) -> None:
    assert parse_prompt(text) == expected


def test_upsampling_a_refined_count_names_both_objects() -> None:
    for seed in range(20):
        scene = parse_prompt(upsample_prompt("two balls: a red one going left and a blue one going up", seed=seed))
        assert [(o.color, o.shape, o.direction) for o in scene.objects] == [
            ("red", "circle", "left"),
            ("blue", "circle", "up"),
        ]


# ---- case, punctuation, hyphens, unknown and stop words ---------------------------------------

@pytest.mark.parametrize(
    "text",
    ["RED BALL GOING UP-RIGHT SLOWLY", "Red-ball, going up-right... slowly!", "(red) ball: up/right, slowly?",
     "  red\tball\n going   up   right  slowly  ", "red ball, slowly going up & right"],
)  # fmt: skip
def test_case_punctuation_and_hyphens(text: str) -> None:
    assert parse_prompt(text) == query("red circle up-right slowly")


def test_unknown_words_are_kept_in_order_as_written() -> None:
    assert parse_prompt("a shiny red ball bouncing in the rain") == query("red circle", unknown=("shiny", "rain"))
    assert parse_prompt("A Glowing star-shaped ball, moving left") == query("circle left", unknown=("Glowing", "star"))
    assert parse_prompt("a fast ball moving slowly") == query("circle quickly", unknown=("slowly",))
    assert parse_prompt("a neon-pink ball") == query("circle", unknown=("neon-pink",))


def test_stop_words_alone_are_understood() -> None:
    assert parse_prompt("a an the is on and with of in that which") == PromptQuery()
    assert parse_prompt("") == PromptQuery()


# ---- exact round trips ------------------------------------------------------------------------

def test_round_trip_every_one_object_scene() -> None:
    for background, spec in itertools.product(BACKGROUNDS, ALL_OBJECTS):
        scene = SceneSpec(background, (spec,))
        assert parse_prompt(canonical_caption(scene)) == from_caption(scene), canonical_caption(scene)


def test_round_trip_random_two_object_scenes() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        first, second = rng.sample(ALL_OBJECTS, 2)
        if first.color == second.color:
            continue
        scene = SceneSpec(rng.choice(list(BACKGROUNDS)), (first, second))
        assert parse_prompt(canonical_caption(scene)) == from_caption(scene), canonical_caption(scene)

"""Prompt parsing on hand-written paraphrases of known scenes: synonyms, word orders and missing
attributes together, as people write prompts."""

from __future__ import annotations

import pytest

from kinetoscope.shapes.prompts import parse_prompt
from kinetoscope.shapes.spec import PromptQuery

from prompt_queries import query  # noqa: E402  (tests/ is on sys.path)

PARAPHRASES = [
    ("red ball going left fast", query("red circle left quickly")),
    ("a big red ball moving slowly to the right on black", query("large red circle right slowly", bg="black")),
    ("ball, red, big", query("large red circle")),
    ("fast leftward red dot on white", query("red circle left quickly", bg="white")),
    ("a black background with a red ball", query("red circle", bg="black")),
    ("tiny blue box heading up", query("small blue square up")),
    ("huge green triangle, stationary, grey backdrop", query("large green triangle still", bg="gray")),
    ("a violet disc drifting down and to the left", query("purple circle down-left")),
    ("Yellow cube zooming northeast.", query("yellow square up-right quickly")),
    ("an orange disk that doesn't move", query("orange circle still")),
    ("a little purple dot moving gently upward on a white background",
     query("small purple circle up slowly", bg="white")),
    ("small square", query("small square")),
    ("on a gray background, a large orange triangle moves quickly down",
     query("large orange triangle down quickly", bg="gray")),
    ("a pair of triangles moving right", query("triangle right", "triangle right")),
    ("2 small squares", query("small square", "small square")),
    ("a large yellow square moves quickly down and to the left and a small blue triangle stays still",
     query("large yellow square down-left quickly", "small blue triangle still")),
    ("green triangle at rest on black", query("green triangle still", bg="black")),
    ("A RED BALL MOVING RIGHT", query("red circle right")),
    ("up-right moving green ball", query("green circle up-right")),
    ("a left-moving blue triangle", query("blue triangle left")),
    ("the ball moves toward the bottom right, slowly", query("circle down-right slowly")),
    ("blue ball, upper left, quick", query("blue circle up-left quickly")),
    ("a speedy orange sphere going diagonally up and left", query("orange circle up-left quickly")),
    ("slow red block", query("red square slowly")),
    ("a red ball on white and a green ball", query("red circle", "green circle", bg="white")),
    ("motionless large green circle", query("large green circle still")),
    ("a blue thing moving right", query("blue right")),
    ("a round thing rolling down", query("circle down")),
    ("a circular blue object", query("blue circle")),
    ("triangular red shape moving southwest", query("red triangle down-left")),
    ("a small red circle moves slowly to the right on a gray background",
     query("small red circle right slowly", bg="gray")),
    ("big yellow square going up fast and small green dot going down slowly",
     query("large yellow square up quickly", "small green circle down slowly")),
    ("on black, a tiny green triangle slowly moving west", query("small green triangle left slowly", bg="black")),
    ("crimson ball rising", query("red circle up")),
    ("a ball falling", query("circle down")),
    ("a still red square", query("red square still")),
    ("the blue ball is static", query("blue circle still")),
    ("grey bg, tiny violet disc doesn't move", query("small purple circle still", bg="gray")),
    ("an enormous scarlet box racing east on a white backdrop", query("large red square right quickly", bg="white")),
    ("a red ball moving right quickly; a green ball moving left slowly",
     query("red circle right quickly", "green circle left slowly")),
    ("white bg. small orange triangle. moving right.", query("small orange triangle right", bg="white")),
    ("a large circle that is purple moving down-left", query("large purple circle down-left")),
    ("yellow", query("yellow")),
    ("quickly", query("quickly")),
    ("two balls", query("circle", "circle")),
    ("a small red and a large blue square", query("small red square", "large blue square")),
    ("a big ball, a small box", query("large circle", "small square")),
    ("slowly moving upward, a tiny yellow triangle on a black background",
     query("small yellow triangle up slowly", bg="black")),
    ("leftwards gliding purple pyramid", query("purple triangle left")),
    ("a white ball on black", query("circle", bg="black", unknown=("white",))),
    ("blue box in the lower left going down-left fast", query("blue square down-left quickly")),
    ("Orange dot, southeast, slowly, on grey.", query("orange circle down-right slowly", bg="gray")),
    ("a huge stationary blue cube on a black backdrop", query("large blue square still", bg="black")),
    ("a tiny green ball and a huge red box, both on white",
     query("small green circle", "large red square", bg="white")),
    ("a purple triangle moving up and a yellow disc moving down", query("purple triangle up", "yellow circle down")),
    ("a quick little orange block heading to the upper right",
     query("small orange square up-right quickly")),
    ("a dot", query("circle")),
    ("moving down slowly", query("down slowly")),
    ("a red square that is not moving and a blue ball going right",
     query("red square still", "blue circle right")),
    ("a massive green disk, leisurely moving rightwards across a grey screen",
     query("large green circle right slowly", bg="gray")),
    ("large triangle going up quickly on a white background, it is orange",
     query("large orange triangle up quickly", bg="white")),
]  # fmt: skip


def test_paraphrases_count() -> None:
    assert len(PARAPHRASES) >= 60


@pytest.mark.parametrize(("text", "expected"), PARAPHRASES, ids=[t for t, _ in PARAPHRASES])
def test_paraphrases(text: str, expected: PromptQuery) -> None:
    assert parse_prompt(text) == expected

"""Every word and phrase the Shapes World prompt parser understands, as plain tables.

Each table maps a lower-case phrase (words separated by single spaces; a hyphen in a prompt splits
words, so ``up-right`` reads as ``up right``) to the spec value it means. ``PHRASES`` merges them
into one lookup of ``phrase -> Meaning``; adding a synonym is adding one dict entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from kinetoscope.shapes.spec import COLORS

# The spec's own words come first in each table so that a canonical caption always parses.
COLOR_WORDS: dict[str, str] = {c: c for c in COLORS} | {"violet": "purple", "crimson": "red", "scarlet": "red"}

# Only backgrounds may be black, white or gray: on an object these words are not understood.
BACKGROUND_COLOR_WORDS: dict[str, str] = {"black": "black", "white": "white", "gray": "gray", "grey": "gray"}

SHAPE_NOUNS: dict[str, str] = {
    "circle": "circle", "ball": "circle", "disk": "circle", "disc": "circle", "dot": "circle",
    "sphere": "circle", "orb": "circle",
    "square": "square", "box": "square", "block": "square", "cube": "square",
    "triangle": "triangle", "pyramid": "triangle",
}  # fmt: skip

# Shape words that modify a noun rather than name the object ("a round thing").
SHAPE_ADJECTIVES: dict[str, str] = {
    "round": "circle", "circular": "circle", "spherical": "circle",
    "squared": "square", "boxy": "square",
    "triangular": "triangle",
}  # fmt: skip

# Nouns for an object whose shape the prompt leaves open ("a red one", "two things").
GENERIC_NOUNS: tuple[str, ...] = ("object", "thing", "shape", "item", "blob", "sprite", "figure")

SIZE_WORDS: dict[str, str] = {
    "large": "large", "big": "large", "huge": "large", "giant": "large", "enormous": "large",
    "massive": "large", "bigger": "large", "larger": "large",
    "small": "small", "tiny": "small", "little": "small", "mini": "small", "miniature": "small",
    "smaller": "small",
}  # fmt: skip

# Speed words; a verb that carries a speed ("zooming") also says the object moves.
SPEED_WORDS: dict[str, str] = {
    "quickly": "quickly", "fast": "quickly", "quick": "quickly", "rapidly": "quickly",
    "rapid": "quickly", "speedy": "quickly", "speedily": "quickly", "swiftly": "quickly",
    "swift": "quickly", "faster": "quickly", "high speed": "quickly", "fast pace": "quickly",
    "quick pace": "quickly", "zooming": "quickly", "zooms": "quickly", "racing": "quickly",
    "races": "quickly", "speeding": "quickly", "darting": "quickly", "darts": "quickly",
    "rushing": "quickly", "rushes": "quickly", "whizzing": "quickly", "whizzes": "quickly",
    "slowly": "slowly", "slow": "slowly", "gently": "slowly", "gentle": "slowly",
    "leisurely": "slowly", "lazily": "slowly", "lazy": "slowly", "unhurried": "slowly",
    "gradually": "slowly", "slower": "slowly", "low speed": "slowly", "slow pace": "slowly",
    "crawling": "slowly", "crawls": "slowly", "creeping": "slowly", "creeps": "slowly",
    "inching": "slowly",
}  # fmt: skip

# Single-axis words combine with a neighbour on the other axis ("up and to the right" -> up-right).
DIRECTION_WORDS: dict[str, str] = {
    "right": "right", "rightward": "right", "rightwards": "right", "east": "right",
    "eastward": "right", "eastwards": "right",
    "left": "left", "leftward": "left", "leftwards": "left", "west": "left",
    "westward": "left", "westwards": "left",
    "up": "up", "upward": "up", "upwards": "up", "north": "up", "northward": "up",
    "northwards": "up", "top": "up", "upper": "up", "rising": "up", "rises": "up",
    "climbing": "up", "climbs": "up", "ascending": "up", "ascends": "up",
    "down": "down", "downward": "down", "downwards": "down", "south": "down",
    "southward": "down", "southwards": "down", "bottom": "down", "lower": "down",
    "falling": "down", "falls": "down", "sinking": "down", "sinks": "down",
    "dropping": "down", "drops": "down", "descending": "down", "descends": "down",
    "northeast": "up-right", "northwest": "up-left", "southeast": "down-right", "southwest": "down-left",
}  # fmt: skip

STILL_PHRASES: tuple[str, ...] = (
    "still", "stays still", "static", "stationary", "motionless", "unmoving", "immobile", "frozen",
    "not moving", "isn't moving", "doesn't move", "does not move", "don't move", "do not move",
    "never moves", "not in motion", "no motion", "no movement", "without moving", "at rest",
    "resting", "stays put", "stay put", "stopped",
)  # fmt: skip

# Verbs that say an object moves without saying where ("bouncing"): a moving direction is sampled.
MOTION_WORDS: tuple[str, ...] = (
    "moves", "move", "moving", "moved", "movement", "motion", "in motion", "still moving",
    "still moves", "goes", "go", "going", "heads", "heading", "headed", "travels", "travel",
    "travelling", "traveling", "drifts", "drifting", "slides", "sliding", "glides", "gliding",
    "flies", "flying", "rolls", "rolling", "bounces", "bouncing", "floats", "floating", "runs",
    "running", "shifts", "shifting", "scrolls", "scrolling", "crosses", "crossing", "sweeps",
    "sweeping", "diagonal", "diagonally",
)  # fmt: skip

# Counts above 2 are understood but the world holds at most 2 objects (see prompts.py).
COUNT_WORDS: dict[str, int] = {
    "one": 1, "single": 1, "a single": 1, "lone": 1, "only one": 1,
    "two": 2, "pair": 2, "pair of": 2, "couple": 2, "couple of": 2,
    "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "several": 3, "many": 3, "multiple": 3, "few": 3, "a few": 3,
}  # fmt: skip

# Phrases that pick one of the objects counted before ("two balls, the first red, the other blue"):
# the value is the object's place, or None for the next one not yet described. "one" is not here:
# it is a count or a pronoun by its context (see prompts.py).
REFERENT_WORDS: dict[str, int | None] = {
    "the first": 1, "the second": 2, "the former": 1, "the latter": 2, "the other": None, "another": None,
}  # fmt: skip

# Words that hand what follows to every object named so far ("one red, one blue, both moving left").
COLLECTIVE_WORDS: tuple[str, ...] = ("both", "each", "both of them", "each of them", "all of them")

BACKGROUND_NOUNS: tuple[str, ...] = ("background", "backdrop", "bg", "canvas", "screen")
# "on white": a background colour after one of these (and no object noun after it) names the background.
BACKGROUND_PREPOSITIONS: tuple[str, ...] = ("on", "against", "over", "onto", "upon")

# Separators that may join a list of objects ("red and blue squares", "a ball and a box").
LIST_SEPARATORS: tuple[str, ...] = ("and", "or", ",", "&", "plus", "as well as")
# Hard boundaries between phrases: nothing is read across them.
BREAKS: tuple[str, ...] = (".", ";", "with", "while", "whereas", "then", "next to", "beside", "near")
# Words a noun phrase may contain without meaning anything ("a very big ball").
DETERMINERS: tuple[str, ...] = (
    "a", "an", "the", "some", "this", "these", "those", "its", "their", "very", "really", "super",
    "quite", "extremely", "pretty", "rather",
)  # fmt: skip
# Nouns that carry no attribute; after "one" or a referent they make a fixed phrase ("in one frame",
# "to the other side"), so that word is not a pronoun for an object.
NOUN_STOP_WORDS: tuple[str, ...] = (
    "corner", "side", "edge", "direction", "way", "frame", "video", "clip", "scene", "image", "picture",
    "animation", "shot", "footage", "color", "colour", "size", "speed", "pace", "velocity",
)  # fmt: skip
# Known words that carry no attribute: they are neither parsed nor reported as not understood.
STOP_WORDS: tuple[str, ...] = NOUN_STOP_WORDS + (
    "is", "are", "was", "were", "be", "being", "it", "they", "them", "there", "here", "of", "in",
    "into", "inside", "within", "across", "along", "around", "through", "to", "towards", "toward",
    "from", "at", "by", "for", "as", "that", "which", "who", "where", "also", "just", "keeps",
    "keep", "stays", "stay", "remains", "remain", "sits", "sit", "sitting", "stands", "stand",
    "standing", "has", "have", "does", "do", "can", "will", "showing", "shows", "show", ":", "other",
    "together", "behind", "in front of", "colored", "coloured", "sized", "shaped",
    # Phrases with "one" or "each" that name no object.
    "each other", "one another", "one by one", "one side to the other", "side to side",
)  # fmt: skip
# Words allowed between two single-axis directions that combine ("down and to the left").
DIRECTION_CONNECTORS: tuple[str, ...] = ("and", "to", "the", "towards", "toward", "&")


@dataclass(frozen=True)
class Meaning:
    """What one phrase means: a ``kind`` (see ``PHRASES``) and, for attribute kinds, the spec value."""

    kind: str
    value: str | int | None = None
    plural: bool = False


def _plural(noun: str) -> str:
    return f"{noun}es" if noun.endswith(("x", "s", "sh", "ch")) else f"{noun}s"


def _build_phrases() -> dict[str, Meaning]:
    """Merge the tables; later tables never override an earlier phrase (the spec's words win)."""
    tables: list[tuple[str, dict[str, str | int | None]]] = [
        ("color", dict(COLOR_WORDS)),
        ("bg_color", dict(BACKGROUND_COLOR_WORDS)),
        ("shape", dict(SHAPE_NOUNS)),
        ("generic", dict.fromkeys(GENERIC_NOUNS)),
        ("shape_adj", dict(SHAPE_ADJECTIVES)),
        ("size", dict(SIZE_WORDS)),
        ("speed", dict(SPEED_WORDS)),
        ("direction", dict(DIRECTION_WORDS) | dict.fromkeys(STILL_PHRASES, "still")),
        ("motion", dict.fromkeys(MOTION_WORDS)),
        ("count", dict(COUNT_WORDS)),
        ("ref", dict(REFERENT_WORDS)),
        ("all", dict.fromkeys(COLLECTIVE_WORDS)),
        ("bg_noun", dict.fromkeys(BACKGROUND_NOUNS)),
        ("bg_prep", dict.fromkeys(BACKGROUND_PREPOSITIONS)),
        ("and", dict.fromkeys(LIST_SEPARATORS)),
        ("break", dict.fromkeys(BREAKS)),
        ("det", dict.fromkeys(DETERMINERS)),
        ("stop", dict.fromkeys(STOP_WORDS)),
    ]
    phrases: dict[str, Meaning] = {}
    for kind, table in tables:
        for phrase, value in table.items():
            phrases.setdefault(phrase, Meaning(kind, value))
    for noun, shape in SHAPE_NOUNS.items():
        phrases.setdefault(_plural(noun), Meaning("shape", shape, plural=True))
    for noun in GENERIC_NOUNS:
        phrases.setdefault(_plural(noun), Meaning("generic", None, plural=True))
    return phrases


# Every phrase the parser understands. Kinds: object attributes (color, shape_adj, size, speed,
# direction, motion), object nouns (shape, generic), count, referents to counted objects (ref, all),
# background parts (bg_color, bg_noun, bg_prep), and structure (and, break, det, stop).
PHRASES: dict[str, Meaning] = _build_phrases()
MAX_PHRASE_WORDS = max(len(p.split()) for p in PHRASES)


def caption_language() -> list[str]:
    """Texts covering every word the Shapes World's prompts and captions use.

    A word-level text encoder builds its vocabulary from these: every phrase the parser knows
    plus the words and punctuation of canonical captions ("moves", "on", ".", ...).
    """
    from kinetoscope.shapes.spec import BACKGROUNDS, DIRECTIONS, SHAPES, SIZES, SPEEDS, ObjectSpec, SceneSpec
    from kinetoscope.shapes.spec import canonical_caption

    captions = [
        canonical_caption(SceneSpec(bg, (ObjectSpec("red", shape, size, direction, speed),)))
        for bg in BACKGROUNDS
        for shape in SHAPES
        for size in SIZES
        for direction in DIRECTIONS
        for speed in SPEEDS
    ]
    return [*PHRASES, *captions, "a red circle stays still and a blue square moves up, on grey; the end!"]

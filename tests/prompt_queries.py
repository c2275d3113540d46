"""Building expected parses in prompt tests: ``obj("red circle left")`` and ``query(...)``."""

from __future__ import annotations

from kinetoscope.shapes.spec import COLORS, DIRECTIONS, SHAPES, SIZES, SPEEDS, ObjectQuery, PromptQuery

# The attribute value sets are disjoint, so a word alone says which attribute it sets.
ATTRIBUTE_VALUES = {"color": COLORS, "shape": SHAPES, "size": SIZES, "direction": DIRECTIONS, "speed": SPEEDS}


def obj(words: str) -> ObjectQuery:
    """``obj("red circle left quickly")``: an ObjectQuery naming exactly those spec values."""
    named = {}
    for word in words.split():
        (attribute,) = [a for a, values in ATTRIBUTE_VALUES.items() if word in values]
        named[attribute] = word
    return ObjectQuery(**named)


def query(*objects: str, bg: str | None = None, unknown: tuple[str, ...] = ()) -> PromptQuery:
    return PromptQuery(bg, tuple(obj(o) for o in objects), unknown)

"""Prompt upsampling grounded on given frames: what a prompt leaves open is read from them.

Animating an image or extending a video with a terse prompt ("moving left") must not draw a
colour, a shape or a background the given frames contradict, nor a direction or speed a given
video already shows. Each object the prompt names is matched to one the analyzer detects in the
frames (by colour when both have one, else by the most named attributes in common) and takes
that object's attributes wherever the prompt says nothing; detected objects the prompt does not
name are added as they are (up to the world's two), since the frames will show them. Named
attributes always win, which is what an edit asks for ("a blue ball" over a red one keeps the
red ball's size and motion and changes its colour).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kinetoscope.shapes.detect import DetectedObject, SceneDetection, detect_scene
from kinetoscope.shapes.spec import MAX_FRAMES, ObjectQuery, ObjectSpec, PromptQuery

_MAX_OBJECTS = 2
_ATTRIBUTES = ("shape", "size", "direction", "speed")


def _agreement(query: ObjectQuery, found: DetectedObject) -> int:
    return sum(getattr(query, a) is not None and getattr(query, a) == getattr(found, a) for a in _ATTRIBUTES)


def _match(
    queries: tuple[ObjectQuery, ...], found: tuple[DetectedObject, ...]
) -> tuple[list[DetectedObject | None], list[DetectedObject]]:
    """Greedy in prompt order: a detected object of the named colour, else the best agreeing one.
    Returns the match of each query and the detected objects left over."""
    free = list(found)
    matches: list[DetectedObject | None] = []
    for query in queries:
        same = [f for f in free if query.color is not None and f.color == query.color]
        # max keeps the first of equals, and detections come largest first.
        pick = same[0] if same else max(free, key=lambda f: _agreement(query, f), default=None)
        if pick is not None:
            free.remove(pick)
        matches.append(pick)
    return matches, free


def ground_query(query: PromptQuery, scene: SceneDetection) -> PromptQuery:
    """``query`` with its open attributes taken from the objects and background of ``scene``."""
    matches, left = _match(query.objects, scene.objects[:_MAX_OBJECTS])
    added = left[: max(0, _MAX_OBJECTS - len(query.objects))]
    queries = query.objects + tuple(ObjectQuery() for _ in added)
    named_colors = {q.color for q in queries if q.color is not None}
    objects = []
    for obj, seen in zip(queries, [*matches, *added]):
        if seen is not None:
            filled = {a: getattr(seen, a) for a in _ATTRIBUTES if getattr(obj, a) is None and getattr(seen, a) is not None}
            # Two objects never share a colour: a colour another object is asked for stays open.
            if obj.color is None and seen.color not in named_colors:
                filled["color"] = seen.color
                named_colors.add(seen.color)
            obj = replace(obj, **filled)
        objects.append(obj)
    return replace(query, background=query.background or scene.background, objects=tuple(objects))


def ground_prompt(query: PromptQuery, frames: np.ndarray) -> PromptQuery:
    """:func:`ground_query` on what the analyzer sees in ``frames`` (uint8 ``"t h w c"``, the first
    64 of them); a one-frame image grounds how objects look, not how they move."""
    return ground_query(query, detect_scene(np.asarray(frames)[:MAX_FRAMES]))


def recaption_motion(caption: str, frames: np.ndarray) -> str:
    """``caption`` (canonical, as upsampling gives) with each moving object's direction as ``frames`` show it.

    Training captions name the direction a clip starts with, so a window of a long video that
    starts with ``frames`` (its context) needs the direction they show, e.g. after a bounce.
    Objects are found by colour; one the frames show still, or do not show moving long enough
    to tell, keeps the caption's direction, and whether an object moves stays the caption's.
    """
    from kinetoscope.shapes.prompts import parse_prompt
    from kinetoscope.shapes.spec import SceneSpec, canonical_caption

    query = parse_prompt(caption)
    found = {o.color: o for o in detect_scene(np.asarray(frames)[:MAX_FRAMES]).objects}
    if not query.objects or query.background is None or any(None in (o.color, o.shape, o.size) for o in query.objects):
        return caption  # not a canonical caption: nothing to rewrite
    objects = []
    for obj in query.objects:
        seen = found.get(obj.color)
        direction = obj.direction
        if direction not in (None, "still") and seen is not None and seen.direction not in (None, "still"):
            direction = seen.direction
        objects.append(ObjectSpec(obj.color, obj.shape, obj.size, direction or "still", obj.speed or "slowly"))
    return " ".join((canonical_caption(SceneSpec(query.background, tuple(objects))), *query.unknown_words))

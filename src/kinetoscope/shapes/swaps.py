"""Scenes with one attribute changed: the negatives that show whether a model reads a caption word.

One object's attribute swapped for another value (``ATTRIBUTES``), or, in two-object scenes,
both directions reversed or one attribute exchanged between the objects (``TWO_OBJECT_SWAPS``).
An exchange keeps the caption's words and changes only which object they describe, so a model
that reads words without tying them to their object cannot tell the two captions apart. Used by
``eval caption-swap`` (the loss gaps) and by ``train dit --binding-weight`` (a loss on that gap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from kinetoscope.shapes.spec import BACKGROUNDS, COLORS, SHAPES, SIZES, SPEEDS, SceneSpec

ATTRIBUTES = ("color", "shape", "size", "background", "speed", "direction_sign", "direction_axis")
"""Swaps of one object's attribute, for one-object scenes."""
TWO_OBJECT_SWAPS = ("both_direction_sign", "exchange_color", "exchange_shape", "exchange_size", "exchange_speed",
                    "exchange_direction")
"""Swaps for two-object scenes: both objects' directions reversed, or one attribute exchanged."""
EXCHANGEABLE = ("color", "shape", "size", "speed", "direction")
"""Object attributes that :func:`exchanged_scene` exchanges between two objects."""
_OPPOSITE = {"right": "left", "left": "right", "up": "down", "down": "up",
             "up-right": "down-left", "down-left": "up-right", "up-left": "down-right", "down-right": "up-left"}  # fmt: skip
# A quarter turn clockwise on screen (+y is down): right -> down -> left -> up -> right.
_QUARTER_TURN = {"right": "down", "down": "left", "left": "up", "up": "right",
                 "up-right": "down-right", "down-right": "down-left", "down-left": "up-left", "up-left": "up-right"}  # fmt: skip


def _next(options: Sequence[str], value: str) -> str:
    options = list(options)
    return options[(options.index(value) + 1) % len(options)]


def _two_object_swap(scene: SceneSpec, swap: str) -> SceneSpec | None:
    a, b = scene.objects
    if swap == "both_direction_sign":
        if "still" in (a.direction, b.direction):
            return None
        return replace(scene, objects=tuple(replace(o, direction=_OPPOSITE[o.direction]) for o in (a, b)))
    return exchanged_scene(scene, (swap.removeprefix("exchange_"),))


def exchanged_scene(scene: SceneSpec, attributes: Sequence[str]) -> SceneSpec | None:
    """``scene``'s two objects with ``attributes`` (e.g. ``("direction", "speed")``) exchanged at once;
    None where that changes no caption word's object: one object, equal values, or a motion attribute
    of a still object (whose caption leaves out its speed and whose direction is no direction)."""
    unknown = set(attributes) - set(EXCHANGEABLE)
    if unknown:
        raise ValueError(f"cannot exchange {', '.join(sorted(unknown))}; expected some of {', '.join(EXCHANGEABLE)}")
    if len(scene.objects) != 2:
        return None
    a, b = scene.objects
    motion = {"direction", "speed"}.intersection(attributes)
    if motion and "still" in (a.direction, b.direction):
        return None
    if all(getattr(a, name) == getattr(b, name) for name in attributes):
        return None
    a_values = {name: getattr(a, name) for name in attributes}
    b_values = {name: getattr(b, name) for name in attributes}
    return replace(scene, objects=(replace(a, **b_values), replace(b, **a_values)))


def swapped_scene(scene: SceneSpec, attribute: str) -> SceneSpec | None:
    """``scene`` with one attribute changed: of its single object or its background (``ATTRIBUTES``),
    or of its two objects (``TWO_OBJECT_SWAPS``). None where the swap does not apply (another object
    count, a motion attribute of a still object, an exchange of equal values)."""
    if attribute not in ATTRIBUTES + TWO_OBJECT_SWAPS:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {', '.join(ATTRIBUTES + TWO_OBJECT_SWAPS)}")
    if attribute in TWO_OBJECT_SWAPS:
        return _two_object_swap(scene, attribute) if len(scene.objects) == 2 else None
    if len(scene.objects) != 1:
        return None
    obj = scene.objects[0]
    if attribute == "background":
        return replace(scene, background=_next(BACKGROUNDS, scene.background))
    moving = obj.direction != "still"
    if attribute in ("speed", "direction_sign", "direction_axis") and not moving:
        return None
    changed = {
        "color": lambda: replace(obj, color=_next(COLORS, obj.color)),
        "shape": lambda: replace(obj, shape=_next(SHAPES, obj.shape)),
        "size": lambda: replace(obj, size=_next(SIZES, obj.size)),
        "speed": lambda: replace(obj, speed=_next(SPEEDS, obj.speed)),
        "direction_sign": lambda: replace(obj, direction=_OPPOSITE[obj.direction]),
        "direction_axis": lambda: replace(obj, direction=_QUARTER_TURN[obj.direction]),
    }[attribute]()
    return replace(scene, objects=(changed,))


def motion_contrast(scene: SceneSpec) -> SceneSpec | None:
    """The scene whose motion a video of ``scene`` must not show, for contrastive guidance.

    One object: its direction reversed. Two objects: their motions (direction and speed)
    exchanged, so the contrast keeps every word and differs only in which object moves how, the
    binding the model misses most; where both move alike, both directions reversed. None where
    nothing moves.
    """
    if len(scene.objects) == 1:
        return swapped_scene(scene, "direction_sign")
    a, b = scene.objects
    if a.direction == b.direction == "still":
        return None
    if (a.direction, a.speed) != (b.direction, b.speed):
        return replace(scene, objects=(replace(a, direction=b.direction, speed=b.speed),
                                       replace(b, direction=a.direction, speed=a.speed)))  # fmt: skip
    return swapped_scene(scene, "both_direction_sign")

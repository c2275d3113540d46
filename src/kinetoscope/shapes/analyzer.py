"""Judge a clip against what a prompt asks: the spec's "What is measured on generated clips".

Per expected object: present in at least 90% of frames, its colour, shape, size class,
direction (from the velocity before the first bounce), speed class, and a steady area; per
clip: the background when the prompt names one, and the object count. An attribute the prompt
leaves open is measured and reported but never counts against the clip; presence and area are
always judged. Expected objects are matched to detected ones by colour when the prompt names
it, otherwise by how many named attributes agree.

    report = analyze_clip(frames, parse_prompt("a red ball moving left"))
    report.all_correct, report.to_dict()
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from kinetoscope.shapes.detect import DetectedObject, SceneDetection, detect_objects, detect_scene
from kinetoscope.shapes.measure import AREA_TOLERANCE
from kinetoscope.shapes.spec import ObjectQuery, PromptQuery

__all__ = [
    "AttributeResult",
    "ClipReport",
    "DetectedObject",
    "ObjectReport",
    "SceneDetection",
    "analyze_clip",
    "detect_objects",
    "detect_scene",
    "judge_scene",
]

MIN_PRESENCE = 0.9  # spec: "present in at least 90% of frames"
ATTRIBUTES = ("color", "shape", "size", "direction", "speed")
# Matching weights: a named colour decides the match (objects never share one); the other
# named attributes break ties; any match beats leaving an expected object unmatched.
_MATCH_WEIGHT, _COLOR_WEIGHT = 1000.0, 100.0
# Bounds on the exhaustive matching (prompts name at most 2 objects; noise can show many blobs).
_MAX_EXHAUSTIVE, _MAX_CANDIDATES = 4, 8
_ONE_FRAME = "not applicable: a one-frame clip has no motion"


@dataclass(frozen=True)
class AttributeResult:
    """One judged attribute. ``expected`` None: the prompt leaves it open (reported, not judged).

    ``value`` is the number behind ``measured`` where there is one: presence fraction, size
    ratio (box side / min(H, W)), speed (per frame, units of min(H, W)), area variation, count.
    ``note`` says why an attribute was not judged.
    """

    name: str
    expected: str | None
    measured: str | None
    ok: bool
    value: float | None = None
    note: str = ""

    def to_dict(self) -> dict:
        record = asdict(self)
        record["value"] = None if self.value is None else round(float(self.value), 4)
        return record


@dataclass(frozen=True)
class ObjectReport:
    """The verdicts for expected object ``index``; ``detected`` is the index of the object it
    was matched to in ``ClipReport.detected`` (None: nothing left to match)."""

    index: int
    attributes: tuple[AttributeResult, ...]
    detected: int | None = None

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.attributes)

    def attribute(self, name: str) -> AttributeResult:
        return next(a for a in self.attributes if a.name == name)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "detected": self.detected,
            "ok": self.ok,
            "attributes": [a.to_dict() for a in self.attributes],
        }


@dataclass(frozen=True)
class ClipReport:
    """A clip's verdict: background (expected None when the prompt names none), object count,
    one report per expected object, and what was detected (measured attributes only)."""

    background: AttributeResult | None
    count: AttributeResult
    objects: tuple[ObjectReport, ...]
    detected: tuple[dict, ...] = ()

    @property
    def all_correct(self) -> bool:
        background_ok = self.background is None or self.background.ok
        return background_ok and self.count.ok and all(o.ok for o in self.objects)

    def misses(self) -> list[dict]:
        """What was asked and measured instead, per failed verdict: ``{"object", "attribute",
        "expected", "measured"}`` (``object`` None for the background and the object count; an
        object that was not found is one miss, its presence)."""
        def miss(index: int | None, a: AttributeResult) -> dict:
            return {"object": index, "attribute": a.name, "expected": a.expected, "measured": a.measured}

        misses = [miss(None, a) for a in (self.background, self.count) if a is not None and not a.ok]
        for obj in self.objects:
            presence = obj.attribute("presence")
            wrong = [presence] if not presence.ok else [a for a in obj.attributes if not a.ok]
            misses += [miss(obj.index, a) for a in wrong]
        return misses

    def to_dict(self) -> dict:
        return {
            "all_correct": self.all_correct,
            "background": self.background.to_dict() if self.background else None,
            "count": self.count.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
            "detected": list(self.detected),
        }


def analyze_clip(frames: np.ndarray, expected: PromptQuery) -> ClipReport:
    """Judge ``frames`` ``"t h w c"`` (uint8 RGB) against ``expected``.

    Odd content (no frames, no objects, noise) gives a failing report, not an error; only an
    array that is not ``"t h w c"`` raises ValueError. A prompt naming no object asks for "1 or 2 objects"; each detected one is then reported
    with every attribute open.
    """
    return judge_scene(detect_scene(frames), expected)


def judge_scene(scene: SceneDetection, expected: PromptQuery) -> ClipReport:
    """Judge an already detected clip (``detect_scene``) against ``expected``: one detection
    serves any number of prompts."""
    found = scene.objects
    background = _judge("background", expected.background, scene.background)
    if expected.objects:
        count = _judge("count", str(len(expected.objects)), str(len(found)), value=len(found))
        queries = expected.objects
    else:
        count = AttributeResult("count", None, str(len(found)), 1 <= len(found) <= 2, float(len(found)), "1 or 2")
        queries = (ObjectQuery(),) * len(found)
    matches = _match(queries, found)
    reports = tuple(
        ObjectReport(i, _judge_object(query, found[m] if m is not None else None, scene), m)
        for i, (query, m) in enumerate(zip(queries, matches))
    )
    return ClipReport(background, count, reports, tuple(d.summary() for d in found))


def _judge(
    name: str, expected: str | None, measured: str | None, value: float | None = None, note: str = ""
) -> AttributeResult:
    ok = expected is None or expected == measured
    return AttributeResult(name, expected, measured, ok, None if value is None else float(value), note)


def _agrees(name: str, query: ObjectQuery, found: DetectedObject) -> bool:
    expected = getattr(query, name)
    if name == "speed" and query.direction == "still":
        return True
    return expected == getattr(found, name)


def _match(queries: tuple[ObjectQuery, ...], found: tuple[DetectedObject, ...]) -> list[int | None]:
    """The detected index (or None) per query, maximising the weighted agreement.

    Exhaustive over the few objects a prompt can name; a query naming nothing is matched in
    order (detected objects come largest first).
    """
    if not any(q.named() for q in queries) or len(queries) > _MAX_EXHAUSTIVE:
        return [i if i < len(found) else None for i in range(len(queries))]
    options = list(range(min(len(found), _MAX_CANDIDATES))) + [None] * len(queries)
    best, best_score = [None] * len(queries), -1.0
    for pick in itertools.permutations(options, len(queries)):
        score = sum(_pair_score(query, found[m]) for query, m in zip(queries, pick) if m is not None)
        if score > best_score:
            best, best_score = list(pick), score
    return best


def _pair_score(query: ObjectQuery, found: DetectedObject) -> float:
    agreeing = [name for name in query.named() if _agrees(name, query, found)]
    return _MATCH_WEIGHT + sum(_COLOR_WEIGHT if name == "color" else 1.0 for name in agreeing)


def _judge_object(
    query: ObjectQuery, found: DetectedObject | None, scene: SceneDetection
) -> tuple[AttributeResult, ...]:
    if found is None:
        missing = "no matching object in the clip"
        results = [AttributeResult("presence", "present", "absent", False, 0.0, missing)]
        results += [_judge(name, getattr(query, name), None, note=missing) for name in ATTRIBUTES]
        results.append(AttributeResult("area", "steady", None, False, None, missing))
        return tuple(results)
    present = found.presence >= MIN_PRESENCE
    results = [
        AttributeResult("presence", "present", "present" if present else "absent", present, found.presence),
        _judge("color", query.color, found.color),
        _judge("shape", query.shape, found.shape),
        _judge("size", query.size, found.size, found.size_ratio),
        _judge_direction(query, found, scene),
        _judge_speed(query, found, scene),
    ]
    if found.area_variation is None:
        note = "not judged: another object overlaps it in every frame"
        results.append(AttributeResult("area", "steady", None, True, None, note))
    else:
        steady = found.area_variation <= AREA_TOLERANCE
        measured = "steady" if steady else "unsteady"
        results.append(AttributeResult("area", "steady", measured, steady, found.area_variation))
    return tuple(results)


def _judge_direction(query: ObjectQuery, found: DetectedObject, scene: SceneDetection) -> AttributeResult:
    if scene.num_frames < 2:
        return AttributeResult("direction", query.direction, None, True, None, _ONE_FRAME)
    if found.velocity is None:
        return _judge("direction", query.direction, None, note="not measurable: too few frames show it apart")
    return _judge("direction", query.direction, found.direction)


def _judge_speed(query: ObjectQuery, found: DetectedObject, scene: SceneDetection) -> AttributeResult:
    if scene.num_frames < 2:
        return AttributeResult("speed", query.speed, None, True, None, _ONE_FRAME)
    if query.direction == "still":
        return AttributeResult("speed", query.speed, found.speed, True, found.speed_value, "not judged: a still object")
    return _judge("speed", query.speed, found.speed, found.speed_value)

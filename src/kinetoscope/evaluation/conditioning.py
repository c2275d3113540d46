"""Measures of generation with given frames, on the Shapes World: fidelity, seams, adherence, edits.

* **Given frames** come back when the output's frames at their places match them: PSNR per frame,
  the lowest reported (identical frames count as :data:`MAX_PSNR`).
* **Seams** are where new frames meet given ones (or earlier windows). A seam is continuous when
  every object's centre moves across it by no more than :data:`SEAM_FACTOR` times its per-frame
  speed, the median step over :data:`SEAM_CONTEXT` frames on both sides (at least the spec's slow
  speed, so a still object may jitter by a few pixels). Centres are read where no other object
  overlaps (elsewhere they come from box edges); an object overlapped at the seam is not judged,
  and one seen on one side only fails unless an object shown beside it covers where it could be.
* **Adherence** of the new frames is the analyzer's all-correct verdict against the prompt, with
  the direction each object really has where the new frames start: a ball that bounced off a wall
  in the given frames keeps going the way it bounced (:func:`segment_query`).
* **Edits** keep each object's trajectory (mean centre distance to the input's within
  :data:`TRAJECTORY_TOLERANCE` of the frame's shorter side) and change what the prompt asks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kinetoscope.shapes import spec
from kinetoscope.shapes.analyzer import judge_scene
from kinetoscope.shapes.detect import DetectedObject, detect_scene
from kinetoscope.shapes.spec import PromptQuery, SceneSpec
from kinetoscope.shapes.track import MAX_STEP, overlapping

MAX_PSNR = 100.0
SEAM_FACTOR = 3.0
SEAM_CONTEXT = 4
TRAJECTORY_TOLERANCE = 0.05
_SIGNS_TO_DIRECTION = {
    (1, 0): "right", (-1, 0): "left", (0, -1): "up", (0, 1): "down",
    (1, -1): "up-right", (-1, -1): "up-left", (1, 1): "down-right", (-1, 1): "down-left",
}  # fmt: skip


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape (:data:`MAX_PSNR` when identical)."""
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10 * np.log10(255.0**2 / mse))


def given_psnr(output: np.ndarray, given: np.ndarray, positions: list[int] | range) -> float:
    """The lowest per-frame PSNR of ``output``'s frames at ``positions`` against ``given`` ``"n h w c"``."""
    return min(psnr(output[p], frame) for p, frame in zip(positions, given, strict=True))


@dataclass(frozen=True)
class SeamObject:
    """One object across a seam: ``jump`` and ``speed`` in pixels per frame (None when not measurable)."""

    color: str
    jump: float | None
    speed: float | None
    allowed: float | None
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class SeamCheck:
    """The seam between frames ``seam - 1`` and ``seam``; continuous when every object is."""

    seam: int
    objects: tuple[SeamObject, ...]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.objects)


def _hidden(obj: DetectedObject, others: list[DetectedObject], seen: int, missing: int) -> bool:
    """Whether an object shown alongside ``obj`` at frame ``seen`` covers, at frame ``missing``, where
    ``obj`` could be: its box at ``seen`` grown to its full size and by the fastest spec step per
    frame between (the analyzer's presence rule, :func:`~kinetoscope.shapes.track.presence`)."""
    visible = obj.track.visible
    sizes = obj.boxes[visible, 2:] - obj.boxes[visible, :2]
    seen_size = obj.boxes[seen, 2:] - obj.boxes[seen, :2]
    grow = np.tile(sizes.max(axis=0) - seen_size, 2) + MAX_STEP * min(obj.masks.shape[1:]) * abs(missing - seen)
    region = obj.boxes[seen] + np.array([-1, -1, 1, 1]) * grow
    return any(
        other.track.visible[seen] and overlapping(region[None], other.boxes[missing][None])[0] for other in others
    )


def _check_object(obj: DetectedObject, others: list[DetectedObject], seam: int, lo: int, hi: int, floor: float) -> SeamObject:
    visible = obj.track.visible
    # Centres are exact only where no other object overlaps (``clear``); elsewhere they come from
    # box edges and can move by pixels with what hides them, so those frames are left out.
    precise = obj.clear & ~np.isnan(obj.centers).any(axis=1)
    before = [t for t in range(lo, seam) if precise[t]]
    after = [t for t in range(seam, hi) if precise[t]]
    if not visible[lo:seam].any() or not visible[seam:hi].any():
        if not visible[lo:hi].any():
            return SeamObject(obj.color, None, None, None, True, "not near the seam")
        seen, missing = (max(t for t in range(lo, seam) if visible[t]), seam) if visible[lo:seam].any() else (
            min(t for t in range(seam, hi) if visible[t]), seam - 1)  # fmt: skip
        ok = _hidden(obj, others, seen, missing)
        return SeamObject(obj.color, None, None, None, ok, "hidden behind another object" if ok else "on one side only")
    if not before or not after:
        return SeamObject(obj.color, None, None, None, True, "overlapped by another object at the seam, not judged")
    steps = []
    for side in (before, after):
        for t0, t1 in zip(side, side[1:]):
            steps.append(np.linalg.norm(obj.centers[t1] - obj.centers[t0]) / (t1 - t0))
    speed = float(np.median(steps)) if steps else 0.0
    jump = float(np.linalg.norm(obj.centers[after[0]] - obj.centers[before[-1]]) / (after[0] - before[-1]))
    allowed = SEAM_FACTOR * max(speed, floor)
    return SeamObject(obj.color, jump, speed, allowed, jump <= allowed)


def check_seams(frames: np.ndarray, seams: list[int] | range, context: int = SEAM_CONTEXT) -> list[SeamCheck]:
    """Continuity of ``frames`` (uint8 ``"t h w c"``) at each seam (a frame index in 1..t-1)."""
    num_frames = len(frames)
    if any(not 0 < s < num_frames for s in seams):
        raise ValueError(f"seams must be in 1..{num_frames - 1}, got {list(seams)}")
    scene = detect_scene(frames)
    floor = spec.SPEEDS["slowly"] * min(scene.height, scene.width)
    checks = []
    for seam in seams:
        lo, hi = max(0, seam - context), min(num_frames, seam + context)
        objects = tuple(
            _check_object(obj, [o for o in scene.objects if o is not obj], seam, lo, hi, floor) for obj in scene.objects
        )
        checks.append(SeamCheck(seam, objects))
    return checks


def segment_query(scene: SceneSpec, boxes: np.ndarray, start: int) -> PromptQuery:
    """What a prompt naming every attribute of ``scene`` asks of the frames from ``start`` on, with each
    moving object's direction the one it has there (``boxes`` ``"t o 4"``: the true clip's boxes)."""
    objects = []
    for i, obj in enumerate(scene.objects):
        if obj.direction != "still" and start + 1 < len(boxes):
            step = boxes[start + 1, i, :2] - boxes[start, i, :2]
            signs = tuple(int(np.sign(round(v, 6))) for v in step)
            obj = replace(obj, direction=_SIGNS_TO_DIRECTION.get(signs, obj.direction))
        objects.append(obj)
    return PromptQuery.from_scene(SceneSpec(scene.background, tuple(objects)))


def adherence(frames: np.ndarray, query: PromptQuery) -> bool:
    """The analyzer's all-correct verdict on ``frames`` against ``query``."""
    return judge_scene(detect_scene(frames), query).all_correct


@dataclass(frozen=True)
class EditJudgement:
    """``changed``: every attribute the edit asks to change reads as asked; ``adherent``: the output
    is all-correct against the edited scene; ``kept``: every trajectory stays (``distances`` in
    pixels per object, None where an object was not found)."""

    changed: bool
    adherent: bool
    kept: bool
    distances: tuple[float | None, ...]

    @property
    def ok(self) -> bool:
        return self.adherent and self.changed and self.kept


def judge_edit(source: np.ndarray, output: np.ndarray, original: SceneSpec, edited: SceneSpec) -> EditJudgement:
    """Judge ``output``, an edit of ``source`` (showing ``original``) that should show ``edited``
    (the same objects in the same order, some attributes changed) along the same trajectories."""
    if len(original.objects) != len(edited.objects):
        raise ValueError("an edit keeps the objects: original and edited need as many")
    found = detect_scene(output)
    report = judge_scene(found, PromptQuery.from_scene(edited))
    before = {o.color: o for o in detect_scene(source).objects}
    limit = TRAJECTORY_TOLERANCE * min(found.height, found.width)
    changed = original.background == edited.background or (report.background is not None and report.background.ok)
    distances: list[float | None] = []
    for i, (was, now) in enumerate(zip(original.objects, edited.objects)):
        asked = [name for name in ("color", "shape", "size") if getattr(was, name) != getattr(now, name)]
        result = report.objects[i]
        changed &= all(result.attribute(name).ok for name in asked)
        src = before.get(was.color)
        if result.detected is None or src is None:
            distances.append(None)
            continue
        gap = np.linalg.norm(found.objects[result.detected].centers - src.centers, axis=1)
        distances.append(float(np.nanmean(gap)) if np.isfinite(gap).any() else None)
    kept = all(d is not None and d <= limit for d in distances)
    return EditJudgement(bool(changed), report.all_correct, kept, tuple(distances))

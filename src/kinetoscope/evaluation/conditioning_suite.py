"""The conditioning suite: one set of Shapes World cases per task, generated and judged.

Every case cuts a true render into what the model is given and what it must make: the image of
frame 0 or of the last frame, the first or last 16 of 32 frames to extend, the first and last 8
of 24 to connect, a whole clip to recolour, a prompt alone for an image or a 64-frame video
grown by extension. The prompt is the scene's canonical caption (for an edit, the recoloured
scene's). A case passes when its given frames come back at :data:`MIN_PSNR` or better, every
seam is continuous and the new frames are all-correct (:mod:`kinetoscope.evaluation.conditioning`);
an edit passes when it changes what was asked and keeps the trajectories; a long video when
it is all-correct (its seams, every frame boundary, are reported). As with the text-to-video
paraphrases, a case is kept only when its own true frames pass the judge, so an analyzer miss
never counts against the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from kinetoscope.evaluation.conditioning import (
    adherence,
    check_seams,
    given_psnr,
    judge_edit,
    segment_query,
)
from kinetoscope.evaluation.stats import wilson_interval
from kinetoscope.shapes import spec
from kinetoscope.shapes.render import RenderedClip, render_clip, sample_scene
from kinetoscope.shapes.spec import PromptQuery, SceneSpec, canonical_caption

TASKS = ("image", "image-to-video", "image-to-video-last", "extend", "extend-backward", "connect", "edit", "long")
MIN_PSNR = 28.0
# Frames of each case: clip length, given and new frames (see the module docstring).
CLIP_FRAMES, EXTEND_FRAMES, CONNECT_FRAMES, LONG_FRAMES = 16, 16, 8, 64


@dataclass(frozen=True)
class ConditioningCase:
    """One case: the ``task``, the ``prompt`` and the ``scene`` it describes, the ``truth`` (the
    right output; for an edit, the input), the inputs the task takes, and where the output's
    given frames, new frames and seams are."""

    task: str
    prompt: str
    scene: SceneSpec
    truth: RenderedClip
    seed: int
    image: np.ndarray | None = None
    image_frame: int = 0
    video: np.ndarray | None = None
    last_video: np.ndarray | None = None
    num_frames: int = CLIP_FRAMES
    given: tuple[int, ...] = ()
    new: tuple[int, int] = (0, 0)
    seams: tuple[int, ...] = ()

    def given_frames(self) -> np.ndarray:
        """The input frames in output order (those at ``given``)."""
        parts = [x for x in (self.image, self.video, self.last_video) if x is not None]
        return np.concatenate(parts) if parts else np.zeros((0, *self.truth.frames.shape[1:]), np.uint8)


def _recolored(scene: SceneSpec, rng: np.random.Generator) -> SceneSpec:
    """``scene`` with every object in a new colour (none it had, none shared)."""
    free = [c for c in spec.COLORS if c not in {o.color for o in scene.objects}]
    picks = rng.choice(free, size=len(scene.objects), replace=False)
    return SceneSpec(scene.background, tuple(replace(o, color=str(c)) for o, c in zip(scene.objects, picks)))


def make_case(task: str, rng: np.random.Generator) -> ConditioningCase:
    """A case of ``task`` drawn from ``rng``."""
    scene = sample_scene(rng)
    seed = int(rng.integers(2**31))
    caption = canonical_caption(scene)

    def render(frames: int, of: SceneSpec = scene) -> RenderedClip:
        return render_clip(of, num_frames=frames, seed=seed)

    if task == "image":
        return ConditioningCase(task, caption, scene, render(1), seed, num_frames=1, new=(0, 1))
    if task in ("image-to-video", "image-to-video-last"):
        truth, k = render(CLIP_FRAMES), 0 if task == "image-to-video" else CLIP_FRAMES - 1
        new = (1, CLIP_FRAMES) if k == 0 else (0, k)
        return ConditioningCase(task, caption, scene, truth, seed, image=truth.frames[k:k + 1],
                                image_frame=-1 if k else 0, given=(k,), new=new, seams=(max(k, 1),))  # fmt: skip
    if task in ("extend", "extend-backward"):
        truth, n = render(CLIP_FRAMES + EXTEND_FRAMES), EXTEND_FRAMES
        if task == "extend":
            video, given, new = truth.frames[:CLIP_FRAMES], range(CLIP_FRAMES), (CLIP_FRAMES, CLIP_FRAMES + n)
        else:
            video, given, new = truth.frames[n:], range(n, n + CLIP_FRAMES), (0, n)
        return ConditioningCase(task, caption, scene, truth, seed, video=video, num_frames=n, given=tuple(given),
                                new=new, seams=(CLIP_FRAMES if task == "extend" else n,))  # fmt: skip
    if task == "connect":
        m = n = CONNECT_FRAMES
        truth = render(m + n + m)
        given = (*range(m), *range(m + n, m + n + m))
        return ConditioningCase(task, caption, scene, truth, seed, video=truth.frames[:m], last_video=truth.frames[m + n:],
                                num_frames=n, given=given, new=(m, m + n), seams=(m, m + n))  # fmt: skip
    if task == "edit":
        edited = _recolored(scene, rng)
        truth = render(CLIP_FRAMES)
        return ConditioningCase(task, canonical_caption(edited), edited, truth, seed, video=truth.frames,
                                num_frames=CLIP_FRAMES, new=(0, CLIP_FRAMES))  # fmt: skip
    if task == "long":
        return ConditioningCase(task, caption, scene, render(LONG_FRAMES), seed, num_frames=LONG_FRAMES,
                                new=(0, LONG_FRAMES))  # fmt: skip
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def judge_case(case: ConditioningCase, output: np.ndarray) -> dict:
    """Judge one output (uint8 ``"t h w c"``) of ``case``: a row of the suite's result."""
    expected = len(case.truth.frames)
    row: dict = {"task": case.task, "prompt": case.prompt, "objects": len(case.scene.objects), "frames": len(output)}
    if output.shape[1:] != case.truth.frames.shape[1:] or len(output) != expected:
        return {**row, "ok": False, "note": f"expected {expected} frames of {case.truth.frames.shape[1:]}, got {output.shape}"}
    if case.given:
        row["given_psnr"] = round(given_psnr(output, case.given_frames(), list(case.given)), 2)
    if case.task == "edit":
        original = case.truth.scene
        verdict = judge_edit(case.truth.frames, output, original, case.scene)
        row.update(adherent=verdict.adherent, changed=verdict.changed, kept=verdict.kept, ok=verdict.ok,
                   distances=[None if d is None else round(d, 2) for d in verdict.distances])  # fmt: skip
        return row
    start, stop = case.new
    query = segment_query(case.scene, case.truth.boxes, start) if case.task != "image" else PromptQuery.from_scene(case.scene)
    row["adherent"] = adherence(output[start:stop], query)
    seams = range(1, len(output)) if case.task == "long" else case.seams
    row["seams"] = bool(all(s.ok for s in check_seams(output, seams))) if len(seams) else True
    row["ok"] = row["adherent"] and (case.task == "long" or row["seams"]) and row.get("given_psnr", MIN_PSNR) >= MIN_PSNR
    return row


def build_conditioning_suite(per_task: int = 20, tasks: Sequence[str] = TASKS, seed: int = 0) -> list[ConditioningCase]:
    """``per_task`` cases of each task whose true frames pass the judge (in ``tasks``' order)."""
    suite = []
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        # Seeded by the task's place in TASKS, not in ``tasks``: a task's cases are the same whether
        # it runs alone (--tasks) or with the others.
        rng = np.random.default_rng((seed, 0xC0DE, TASKS.index(task)))
        made = 0
        while made < per_task:
            case = make_case(task, rng)
            right = render_clip(case.scene, num_frames=len(case.truth.frames), seed=case.seed).frames
            if judge_case(case, right)["ok"]:
                suite.append(case)
                made += 1
    return suite


@dataclass
class ConditioningResult:
    """Judgements of a suite: one row per case (see :func:`judge_case`)."""

    rows: list[dict] = field(default_factory=list)

    def summary(self) -> dict[str, dict]:
        """Per task: cases, pass rate (with its 95% Wilson interval, ``passed_interval``), and the
        rates and lowest PSNR behind it."""
        out = {}
        for task in dict.fromkeys(r["task"] for r in self.rows):
            rows = [r for r in self.rows if r["task"] == task]
            passed = [bool(r["ok"]) for r in rows]
            entry = {"cases": float(len(rows)), "passed": float(np.mean(passed))}
            entry["passed_interval"] = wilson_interval(sum(passed), len(passed))
            for key in ("adherent", "seams", "changed", "kept"):
                values = [r[key] for r in rows if key in r]
                if values:
                    entry[key] = float(np.mean(values))
            psnrs = [r["given_psnr"] for r in rows if "given_psnr" in r]
            if psnrs:
                entry["min_given_psnr"] = float(min(psnrs))
            out[task] = entry
        return out


def run_conditioning_suite(
    generate: Callable[[ConditioningCase], np.ndarray],
    suite: Sequence[ConditioningCase],
    progress: bool = True,
) -> ConditioningResult:
    """Run ``generate`` (case -> uint8 ``"t h w c"`` output) on every case and judge it."""
    from tqdm import tqdm

    result = ConditioningResult()
    for case in tqdm(suite, desc="eval conditioning", unit="case", disable=not progress):
        result.rows.append(judge_case(case, generate(case)))
    return result


def pipeline_generator(pipe, strength: float | None = None, **sampling) -> Callable[[ConditioningCase], np.ndarray]:
    """``generate`` for :func:`run_conditioning_suite` from a :class:`~kinetoscope.pipelines.KinetoscopePipeline`:
    each task through its pipeline, the noise seeded by the case; ``sampling`` (``num_inference_steps``,
    ``guidance_scale``, ...) goes to every call, ``strength`` to edits (default: the model's)."""
    import torch

    from kinetoscope.pipelines import (
        KinetoscopeConnectPipeline,
        KinetoscopeExtendPipeline,
        KinetoscopeImageToVideoPipeline,
        KinetoscopeVideoToVideoPipeline,
    )

    image_to_video, extend = KinetoscopeImageToVideoPipeline(pipe), KinetoscopeExtendPipeline(pipe)
    connect, edit = KinetoscopeConnectPipeline(pipe), KinetoscopeVideoToVideoPipeline(pipe)

    def generate(case: ConditioningCase) -> np.ndarray:
        kwargs = {"generator": torch.Generator().manual_seed(case.seed), **sampling}
        height, width = case.truth.height, case.truth.width
        if case.task == "image":
            out = pipe(case.prompt, num_frames=1, height=height, width=width, **kwargs)
        elif case.task.startswith("image-to-video"):
            out = image_to_video(case.prompt, image=case.image[0], image_frame=case.image_frame,
                                 num_frames=len(case.truth.frames), **kwargs)  # fmt: skip
        elif case.task in ("extend", "extend-backward"):
            out = extend(case.prompt, video=case.video, num_frames=case.num_frames,
                         backward=case.task == "extend-backward", **kwargs)  # fmt: skip
        elif case.task == "connect":
            out = connect(case.prompt, video=case.video, last_video=case.last_video, num_frames=case.num_frames, **kwargs)
        elif case.task == "edit":
            out = edit(case.prompt, video=case.video, strength=strength, **kwargs)
        else:
            out = extend(case.prompt, num_frames=case.num_frames, height=height, width=width, **kwargs)
        return out.frames[0]

    return generate

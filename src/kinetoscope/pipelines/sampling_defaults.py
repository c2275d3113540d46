"""The sampling settings a model folder stores (``model_index.json``'s ``defaults``) and the checks
they share with a pipeline call's arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kinetoscope.diffusion.guidance import check_interval

SAMPLERS = ("euler", "heun", "sde")


def check_sampling(
    sampler: str, guidance_rescale: float, shift: float | None, eta: float, guidance_interval: tuple[float, float] | None,
    contrast_scale: float = 0.0, contrast_interval: tuple[float, float] | None = None,
) -> None:
    """Raise ValueError naming the first bad sampling setting (a model's default or a call's argument)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if not 0 <= guidance_rescale <= 1:
        raise ValueError(f"guidance_rescale must be in [0, 1], got {guidance_rescale}")
    if shift is not None and not shift > 0:
        raise ValueError(f"shift must be positive (or None: by token count), got {shift}")
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    check_interval(guidance_interval)
    if not contrast_scale >= 0:
        raise ValueError(f"contrast_scale must be 0 or more, got {contrast_scale}")
    check_interval(contrast_interval)


@dataclass
class SamplingDefaults:
    """Generation settings stored with a model (``model_index.json``), chosen by measurement on it."""

    # 16 steps with guidance in [0.3, 1] (below) against 24 guided steps, on the shipped model (eval t2v
    # --per-group 32, suite seeds 0-11, paired): one-object all-correct 375 of 948 against 365 (p = 0.47),
    # two-object 13 against 15, with 28 transformer passes per clip instead of 48. 16 steps alone: 169 of
    # 474 against 168 (seeds 0-5); 48 steps: 165.
    num_inference_steps: int = 16
    guidance_scale: float = 7.0  # measured on the shipped models (eval t2v, guidance 2.5-10)
    # diffusers' name; 0 is plain guidance. Measured on the shipped model (eval t2v --per-group 32):
    # rescale 0 / 0.3 / 0.7 / 1.0 gave one-object all-correct 25 / 22 / 24 / 21 of 79.
    guidance_rescale: float = 0.0
    # Guide only the steps whose time t lies in [lo, hi] (None: every step); the others make one
    # conditional call, so a step outside costs half. Guidance below t = 0.3 is what makes objects
    # pulse: [0.3, 1] at 24 steps (seeds 0-5) left 168 one-object clips with an unsteady area against
    # 202 (paired p < 0.001) and all-correct 175 against 168; without guidance above t = 0.8 instead,
    # direction fell apart (seed 0: 19 against 30 of 79 all-correct).
    guidance_interval: tuple[float, float] | None = (0.3, 1.0)
    # Timestep shift of the sampling schedule (SD3's t' = s t / (1 + (s - 1) t); diffusers'
    # FlowMatchEulerDiscreteScheduler(shift=s)); None: by the token count, as in training
    # (diffusion.shift_for_tokens: 1 at the 80 tokens of a 16-frame 64 x 64 clip). Shift 3 on the
    # shipped model (eval t2v --per-group 32, seeds 0-2): one-object all-correct 76 of 237 against
    # 66 (paired p = 0.15), within noise, so the default stays.
    shift: float | None = None
    # The ancestral sampler (sde at eta 1) over Euler, both 24 steps, on the shipped model (eval t2v
    # --per-group 32, suite seeds 0-11, paired): one-object all-correct 365 of 948 against 304, better
    # on every seed (McNemar p < 0.001); two-object 15 against 6; direction 77% against 71%.
    sampler: str = "sde"
    # How much of the noise the "sde" sampler redraws per step (diffusion.sample_euler_sde; DDIM's eta:
    # 1 is the ancestral sampler, 0 is Euler). 0.5 on the same suite (seeds 0-5): 153 of 474 against
    # Euler's 141 and eta 1's 168.
    eta: float = 1.0
    # Contrastive guidance on motion (diffusion.cfg_denoiser's contrasts): the weight of the term
    # pushing away from the prompt with its motion reversed (one object) or exchanged (two), at the
    # steps whose time is in contrast_interval, where the motion is laid out; 0 turns it off. 7 at
    # [0.7, 1] against none on the shipped model (eval t2v --per-group 32, suite seeds 0-11, paired):
    # one-object direction 797 of 948 against 699, speed 869 against 906 (slow objects sped up),
    # all-correct 391 against 375 (p = 0.22); eval conditioning (seeds 0-1, 280 video cases) 48
    # passed against 43. Weight 3 / 12 and the interval [0.5, 1] or [0.3, 1] were no better (seeds 0-3).
    contrast_scale: float = 7.0
    contrast_interval: tuple[float, float] | None = (0.7, 1.0)
    num_frames: int = 16
    height: int = 64
    width: int = 64
    # Shapes World prompts are upsampled to canonical captions, the language the model was trained on.
    upsample_prompts: bool = True
    # Settings the training run recorded: held-out attribute combinations, for the evaluation.
    held_out: tuple[dict, ...] = field(default_factory=tuple)
    # SDEdit strength of `kinetoscope edit`: the noise level the input is taken to (0 keeps it, 1 ignores it).
    # 0.5 over 0.7 on the shipped model (eval conditioning, 30 recolouring edits): trajectories kept
    # 43% vs 10%, asked colour 93% vs 97%.
    edit_strength: float = 0.5

    def __post_init__(self) -> None:
        self.held_out = tuple(dict(h) for h in self.held_out)  # JSON gives lists
        for name in ("guidance_interval", "contrast_interval"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(getattr(self, name)))  # JSON gives a list
        check_sampling(
            self.sampler, self.guidance_rescale, self.shift, self.eta, self.guidance_interval,
            self.contrast_scale, self.contrast_interval,
        )  # fmt: skip
        if not 0 < self.edit_strength <= 1:
            raise ValueError(f"edit_strength must be in (0, 1], got {self.edit_strength}")

    def resolve(self, **chosen: Any) -> dict[str, Any]:
        """The settings a call runs with: each chosen value, or this model's default where it is None
        (``resolve(guidance_scale=None, sampler="heun")`` -> ``{"guidance_scale": 7.0, "sampler": "heun"}``)."""
        return {name: getattr(self, name) if value is None else value for name, value in chosen.items()}

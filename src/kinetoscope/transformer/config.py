"""The diffusion transformer's hyperparameters, and named sizes of it.

A :class:`DiTConfig` is plain data: it builds a
:class:`~kinetoscope.transformer.DiffusionTransformer`, is written as ``config.json`` beside the
weights (:mod:`kinetoscope.hub`), and its defaults are the small CPU model trained on the Shapes
World. :data:`PRESETS` names bigger and smaller sizes (flux's named
configs, DiT's dict of model functions, torchtitan's tiny "debug" flavour).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

TextConditioning = Literal["cross", "joint"]


@dataclass
class DiTConfig:
    """Hyperparameters of :class:`~kinetoscope.transformer.DiffusionTransformer`.

    The defaults build the Shapes World model: 256 wide, 6 blocks, 4 heads of 64; 7.0M
    parameters with cross-attention, 5.5M with joint attention.
    """

    in_channels: int = 16
    """Latent channels of the VAE whose latents the model denoises (output has the same count)."""
    patch_size: tuple[int, int, int] = (1, 2, 2)
    """(pt, ph, pw) of a spacetime patch; time is left unpatched because the VAE already
    compresses it (Open-Sora report 1: a 3D patch with 2x temporal stride "gave low quality")."""
    width: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    """Width of the text encoder's token embeddings (all-MiniLM-L6-v2 gives 384)."""
    text_conditioning: TextConditioning = "cross"
    """"cross": video tokens cross-attend to text in every block (PixArt, Wan, LTX); text
    length stays out of the quadratic term. "joint": one self-attention over [text; video]
    (single-stream MMDiT, Open-Sora 2.0 / Flux), so text tokens evolve with the video."""
    pooled_text: bool = False
    """Also add the text's mean token state to the time embedding that drives adaLN (SD3 and
    Flux add a pooled text vector there), so a global attribute reaches every token of every
    block without a cross-attention query finding it. Measured against cross-attention alone
    for direction words on the Shapes World (docs/experiments-dit.md, Why direction failed)."""
    self_condition: bool = False
    """Also read a clean estimate of the latent beside the noisy one (self-conditioning, Chen et al.
    2022, "Analog Bits"): the sampler passes the previous step's prediction, training passes the
    model's own no-grad prediction for half the clips and zeros for the rest. Its patch embedding
    starts at zero, so a model given it predicts as before until training opens it. Measured in a
    fine-tune of the shipped model: validation loss 0.219 against 0.227, prompt adherence the same
    (see the README's Self-conditioning), so the shipped model does without it."""
    timestep_freq_dim: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)  # type: ignore[assignment]
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be three positive ints (pt, ph, pw), got {self.patch_size}")
        for name in ("in_channels", "width", "depth", "heads", "text_dim", "timestep_freq_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} is not divisible by heads={self.heads}")
        if self.head_dim % 2 or self.head_dim < 6:
            # RoPE rotates pairs of dims and gives each of t, h, w at least one pair.
            raise ValueError(
                f"width / heads = {self.head_dim} must be even and at least 6 for 3D RoPE "
                f"(width={self.width}, heads={self.heads})"
            )
        if self.timestep_freq_dim % 2:
            raise ValueError(f"timestep_freq_dim must be even, got {self.timestep_freq_dim}")
        for name in ("pooled_text", "self_condition"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.text_conditioning not in ("cross", "joint"):
            raise ValueError(f"text_conditioning must be 'cross' or 'joint', got {self.text_conditioning!r}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if not self.rope_theta > 1:
            raise ValueError(f"rope_theta must be greater than 1, got {self.rope_theta}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")

    @property
    def head_dim(self) -> int:
        """Channels per attention head."""
        return self.width // self.heads

    @property
    def mlp_width(self) -> int:
        """Hidden width of each block's feed-forward layer."""
        return int(self.width * self.mlp_ratio)

    @property
    def token_dim(self) -> int:
        """Width of one patch token in and out: ``in_channels * pt * ph * pw``."""
        return self.in_channels * math.prod(self.patch_size)


# The spatial compression of the VAE the default patch size was chosen for: 2 x 2 patches over an
# 8x VAE cover 16 x 16 pixels per token.
PATCH_VAE_COMPRESSION = 8


def patch_for_vae(patch: tuple[int, int, int], spatial_compression: int) -> tuple[int, int, int]:
    """``patch`` (chosen for an 8x VAE) rescaled so each token covers the same pixels over a VAE of
    ``spatial_compression`` (1 x 4 x 4 over a 4x VAE); unchanged where no whole patch does."""
    pt, ph, pw = patch
    scale = PATCH_VAE_COMPRESSION / spatial_compression
    if not (ph * scale).is_integer() or not (pw * scale).is_integer() or ph * scale < 1 or pw * scale < 1:
        return patch
    return pt, int(ph * scale), int(pw * scale)


def debug() -> DiTConfig:
    """Tiny model for unit tests: 2 blocks, 64 wide, 4 latent channels, 32-wide text."""
    return DiTConfig(in_channels=4, text_dim=32, width=64, depth=2, heads=2)


def shapes() -> DiTConfig:
    """The Shapes World model (the defaults): ~7M parameters, trainable on a CPU."""
    return DiTConfig()


def base() -> DiTConfig:
    """DiT-B-sized: 768 wide, 12 blocks, 12 heads (~119M parameters)."""
    return DiTConfig(width=768, depth=12, heads=12)


def large() -> DiTConfig:
    """DiT-XL / PixArt / STDiT-XL-sized: 1152 wide, 28 blocks, 16 heads (~607M parameters)."""
    return DiTConfig(width=1152, depth=28, heads=16)


PRESETS: dict[str, Callable[[], DiTConfig]] = {
    "debug": debug,
    "shapes": shapes,
    "base": base,
    "large": large,
}
"""Named model sizes; the keys double as a CLI's ``choices``."""

"""The causal video VAE's configuration: a typed dataclass whose defaults build the shipped model.

Compression is derived, not configured twice: the spatial factor is ``patch_size`` times 2 per
``spatial_downsample`` stage transition, the temporal factor is 2 per ``temporal_downsample``
transition. The numbers behind the defaults are in ``benchmarks/vae_arch.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass
class CausalVAEConfig:
    """Size and shape of a :class:`~kinetoscope.vae.model.CausalVideoVAE`.

    Stage ``i`` runs at ``block_out_channels[i]`` channels; stage 0 sees the patchified frames at
    full frame rate, and between stage ``i`` and ``i + 1`` the resolution drops as the two
    ``*_downsample[i]`` flags say (the decoder mirrors it).
    """

    in_channels: int = 3
    # 8 channels at 4x8x8: 96 pixel values per latent value. 16 (ratio 48) reconstructed ~1.2 dB
    # better after 1000 steps, but doubles what the small diffusion model has to generate; the
    # Shapes World's flat colours and simple shapes need little latent capacity.
    latent_channels: int = 8
    # Pixel-unshuffle before any convolution (LTX-Video): the convolutions then never touch the
    # full-resolution frame, where they cost the most per pixel on a CPU. 4 matched 2 in quality
    # (1000 steps) and trained ~30% faster per step, with half the peak memory at 128x128.
    patch_size: int = 4
    block_out_channels: tuple[int, ...] = (64, 64, 80)
    # Residual blocks per stage, index 0 = the full-resolution stage, for each half. The shipped
    # encoder was deepened from (1, 1, 1) and trained with the decoder (10,000 steps): a probe told
    # shapes apart in a latent frame packing four moving frames 82% of the time (78% before), and
    # the analyzer judged 80% of one-object reconstructions all-correct (55% before).
    encoder_layers: tuple[int, ...] = (2, 2, 3)
    # The decoder gets more depth than the encoder: generation pays only for decoding. The shipped
    # decoder was deepened from (1, 1, 2) by decoder-only training (vae/grow.deepen): in 4,000
    # steps (3, 2, 3) reached 29.0 dB on held-out Shapes World clips against 28.8 for (1, 3, 4), more
    # depth at full resolution beating more at the latent's, and drew 70% of shapes (60% before);
    # trained on with the deepened encoder, the pair reached 31.4 dB.
    decoder_layers: tuple[int, ...] = (3, 2, 3)
    spatial_downsample: tuple[bool, ...] = (True, False)
    temporal_downsample: tuple[bool, ...] = (True, True)
    # Per-channel statistics of the encoder's posterior mode over training data, so that
    # ``normalize`` hands the diffusion model roughly unit-variance latents (diffusers'
    # ``latents_mean`` / ``latents_std``, as in Wan and LTX). None means 0 and 1.
    latents_mean: tuple[float, ...] | None = None
    latents_std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("in_channels", "latent_channels", "patch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.block_out_channels = tuple(self.block_out_channels)
        self.encoder_layers = tuple(self.encoder_layers)
        self.decoder_layers = tuple(self.decoder_layers)
        self.spatial_downsample = tuple(bool(v) for v in self.spatial_downsample)
        self.temporal_downsample = tuple(bool(v) for v in self.temporal_downsample)
        stages = len(self.block_out_channels)
        if stages < 1 or any(c < 1 for c in self.block_out_channels):
            raise ValueError(f"block_out_channels must be positive ints, got {self.block_out_channels}")
        for name in ("encoder_layers", "decoder_layers"):
            layers = getattr(self, name)
            if len(layers) != stages or any(n < 0 for n in layers):
                raise ValueError(f"{name} needs {stages} non-negative counts (one per stage), got {layers}")
        for name in ("spatial_downsample", "temporal_downsample"):
            flags = getattr(self, name)
            if len(flags) != stages - 1:
                raise ValueError(f"{name} needs {stages - 1} flags (one per stage transition), got {flags}")
        if self.patch_size & (self.patch_size - 1):
            raise ValueError(f"patch_size must be a power of two, got {self.patch_size}")
        self.latents_mean = self._stats("latents_mean", self.latents_mean, 0.0)
        self.latents_std = self._stats("latents_std", self.latents_std, 1.0)
        if any(not s > 0 for s in self.latents_std):
            raise ValueError(f"latents_std must be positive, got {self.latents_std}")

    def _stats(self, name: str, values: tuple[float, ...] | None, default: float) -> tuple[float, ...]:
        if values is None:
            return (default,) * self.latent_channels
        values = tuple(float(v) for v in values)
        if len(values) != self.latent_channels or not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name} needs {self.latent_channels} finite values, got {values}")
        return values

    @property
    def spatial_compression(self) -> int:
        """Pixels per latent position along each spatial axis."""
        return self.patch_size * 2 ** sum(self.spatial_downsample)

    def with_spatial_compression(self, factor: int) -> CausalVAEConfig:
        """This architecture at another spatial compression (4 or 8 for the default): the stage
        transitions downsample, earliest first, until ``patch_size * 2 ** n == factor``. The
        latent statistics are dropped (another latent has its own)."""
        steps = math.log2(factor / self.patch_size) if factor > 0 else -1.0
        if steps != int(steps) or not 0 <= steps <= len(self.spatial_downsample):
            choices = [self.patch_size * 2**n for n in range(len(self.spatial_downsample) + 1)]
            raise ValueError(f"spatial compression must be one of {choices} for patch_size {self.patch_size}, got {factor}")
        flags = tuple(i < steps for i in range(len(self.spatial_downsample)))
        return replace(self, spatial_downsample=flags, latents_mean=None, latents_std=None)

    @property
    def temporal_compression(self) -> int:
        """Frames per latent frame, after the first frame (which has a latent frame of its own)."""
        return 2 ** sum(self.temporal_downsample)

    @property
    def compression_ratio(self) -> float:
        """Pixel values per latent value: ``t * h * w * in_channels / latent_channels``."""
        s, t = self.spatial_compression, self.temporal_compression
        return t * s * s * self.in_channels / self.latent_channels


def tiny() -> CausalVAEConfig:
    """Same structure and compression as the default at a fraction of the cost: for tests."""
    return CausalVAEConfig(latent_channels=4, block_out_channels=(8, 16, 16), encoder_layers=(1, 1, 1), decoder_layers=(1, 1, 1))


# Named sizes; functions, so that each caller gets a config of its own to change.
PRESETS: dict[str, Callable[[], CausalVAEConfig]] = {"default": CausalVAEConfig, "tiny": tiny}

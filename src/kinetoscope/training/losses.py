"""Reconstruction losses and quality metrics for the video VAE.

The objective is L1 + SSIM + gradient terms + a small KL:
- L1 on pixels keeps flat colours exact (the Shapes World is all flat colours);
- 1 - SSIM (Wang et al. 2004, per frame, 11x11 Gaussian window, sigma 1.5) rewards texture
  and local contrast that L1 alone blurs away on photos;
- L1 on finite differences along x, y and t sharpens edges and penalises flicker, a cheap
  stand-in for the perceptual term of the big video VAEs (it needs a pretrained network); their
  adversarial term is optional here (training.discriminator, off by default: a 1,500-step
  decoder fine-tune with it left small squares as round as before and cost 0.2 dB);
- L1 over the band around the target's edges (off by default): in Shapes World reconstructions
  80% of the squared error sits within 2 px of an object's edge, 8% of the pixels, where a plain
  mean gives it little weight; on photos nearly every pixel is in the band, so it acts as more L1;
- KL to N(0, I) (Kingma & Welling 2014), weighted small, keeps latents bounded and smooth
  for the DiT without costing detail.
Videos are ``"b c t h w"`` in [-1, 1] throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5
# Stabilisers from the SSIM paper, for data in [0, 1]: (0.01 L)^2 and (0.03 L)^2 with L = 1.
_C1, _C2 = 0.01**2, 0.03**2


@dataclass
class LossConfig:
    """Weights of the VAE objective's terms (see the module docstring for why each is there)."""

    l1_weight: float = 1.0
    ssim_weight: float = 0.2
    gradient_weight: float = 0.5
    edge_weight: float = 0.0
    # Per latent value, against a per-pixel reconstruction mean: 1e-6 is the Stable Diffusion
    # VAE's setting, where KL only regularises; larger values visibly blur reconstructions.
    kl_weight: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("l1_weight", "ssim_weight", "gradient_weight", "edge_weight", "kl_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")


def _gaussian_window(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(_SSIM_WINDOW, device=device, dtype=dtype) - (_SSIM_WINDOW - 1) / 2
    g = torch.exp(-(coords**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, _SSIM_WINDOW, _SSIM_WINDOW).contiguous()


def ssim_per_frame(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each frame, ``"b c t h w"`` in [-1, 1] -> ``"b t"``.

    Frames smaller than the 11-pixel window are padded by reflection so small crops still count.
    """
    b, c = x.shape[:2]
    x = rearrange((x.float() + 1) / 2, "b c t h w -> (b t) c h w")
    y = rearrange((y.float() + 1) / 2, "b c t h w -> (b t) c h w")
    short = max(0, _SSIM_WINDOW - min(x.shape[-2:]))
    if short:
        pad = (short // 2 + 1,) * 4
        x, y = F.pad(x, pad, mode="reflect"), F.pad(y, pad, mode="reflect")
    window = _gaussian_window(c, x.device, x.dtype)

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(v, window, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
    return rearrange(ssim_map.mean(dim=(1, 2, 3)), "(b t) -> b t", b=b)


def psnr_per_clip(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each clip, ``"b c t h w"`` in [-1, 1] -> ``"b"``, on the [0, 255] scale."""
    mse = ((x.float() - y.float()) / 2).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def gradient_l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the finite differences of ``x`` and ``y`` along h, w and (when t > 1) t."""
    terms = []
    for dim in (2, 3, 4):
        if x.shape[dim] > 1:
            terms.append((torch.diff(x, dim=dim) - torch.diff(y, dim=dim)).abs().mean())
    return torch.stack(terms).mean()


# A pixel is in the edge band when the target changes by more than this (on [-1, 1], ~6 of 255
# levels) to a neighbour within EDGE_RADIUS pixels: flat colours are out, anti-aliased rims in.
EDGE_THRESHOLD, EDGE_RADIUS = 0.05, 2


def edge_band(target: torch.Tensor) -> torch.Tensor:
    """Boolean ``"b 1 t h w"``: pixels within ``EDGE_RADIUS`` of a spatial change in ``target``."""
    dh = (torch.diff(target, dim=3).abs().amax(dim=1, keepdim=True) > EDGE_THRESHOLD).float()
    dw = (torch.diff(target, dim=4).abs().amax(dim=1, keepdim=True) > EDGE_THRESHOLD).float()
    # A difference between pixels i and i + 1 marks both of them.
    changed = F.pad(dh, (0, 0, 0, 1)).maximum(F.pad(dh, (0, 0, 1, 0)))
    changed = changed.maximum(F.pad(dw, (0, 1)).maximum(F.pad(dw, (1, 0))))
    size = 2 * EDGE_RADIUS - 1  # the marked pair already reaches one pixel
    frames = rearrange(changed, "b c t h w -> (b t) c h w")
    grown = F.max_pool2d(frames, size, stride=1, padding=size // 2)
    return rearrange(grown, "(b t) c h w -> b c t h w", b=target.shape[0]) > 0


def edge_l1(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 over the pixels of ``edge_band(target)`` (0 when the target is flat everywhere)."""
    band = edge_band(target).float()
    error = (reconstruction - target).abs().mean(dim=1, keepdim=True)
    return (error * band).sum() / band.sum().clamp_min(1.0)


def vae_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, kl: torch.Tensor, config: LossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted objective and its parts (as floats, for logging).

    ``kl`` is the posterior's KL divergence per latent value, already averaged (a scalar).
    """
    reconstruction = reconstruction.float()
    parts = {"l1": (reconstruction - target).abs().mean()}
    if config.ssim_weight:
        parts["ssim"] = 1 - ssim_per_frame(reconstruction, target).mean()
    if config.gradient_weight:
        parts["grad"] = gradient_l1(reconstruction, target)
    if config.edge_weight:
        parts["edge"] = edge_l1(reconstruction, target)
    parts["kl"] = kl
    total = (
        config.l1_weight * parts["l1"]
        + config.ssim_weight * parts.get("ssim", 0.0)
        + config.gradient_weight * parts.get("grad", 0.0)
        + config.edge_weight * parts.get("edge", 0.0)
        + config.kl_weight * kl
    )
    return total, {name: float(value.detach()) for name, value in parts.items()}

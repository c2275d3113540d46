"""The VAE training step's model call: encode, draw the latent, decode.

The latent is the posterior's sample, plus, for a decoder that must draw a DiT's inexact latents,
Gaussian noise of a random share of the latent's std (``latent_noise``). It is one module so that
DistributedDataParallel can wrap it (``training.distributed``); with ``scale_equivariance`` it also
decodes the latent pooled 2 x 2 per frame (see :func:`halve`); with a
:class:`~kinetoscope.training.distributed.Share` its draws are the whole batch's, cut to this
process's clips, so a data-parallel run draws what one process alone would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kinetoscope.training.distributed import Share
from kinetoscope.vae.model import CausalVideoVAE


def noisy_latents(
    z: torch.Tensor, max_sigma: float, std: torch.Tensor, generator: torch.Generator, share: Share | None = None
) -> torch.Tensor:
    """``z`` (``"b l t h w"``) plus Gaussian noise of ``sigma * std`` (``"l"``, per channel), with
    sigma drawn uniformly from [0, ``max_sigma``] for each clip, so some clips stay nearly clean.
    With a ``share``, ``z`` is this process's clips of a larger batch."""
    sigma = _draw(torch.rand, (z.shape[0],), z, generator, share) * max_sigma
    noise = _draw(torch.randn, z.shape, z, generator, share)
    return z + rearrange(sigma, "b -> b 1 1 1 1") * rearrange(std.to(z), "l -> 1 l 1 1 1") * noise


def _draw(draw, shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator, share: Share | None) -> torch.Tensor:
    """``draw`` (``torch.rand`` / ``torch.randn``) of ``shape`` like ``like``, or :meth:`Share.draw`."""
    if share is None:
        return draw(shape, generator=generator, device=like.device, dtype=like.dtype)
    return share.draw(draw, shape, like, generator)


def halve(v: torch.Tensor) -> torch.Tensor:
    """``"b c t h w"`` averaged over 2 x 2 pixels of every frame: ``"b c t (h/2) (w/2)"``."""
    return F.avg_pool3d(v, kernel_size=(1, 2, 2))


class RoundTrip(nn.Module):
    """``vae``'s training forward: ``x`` -> (reconstruction, KL per latent value, half-size reconstruction).

    The third is None unless ``scale_equivariance`` is on and the latent's height and width are
    even: then it is the decoding of the latent halved in space (:func:`halve`), the size of the
    halved clip it is compared with. Skorokhodov et al. 2025 ("Improving the Diffusability of Autoencoders") trace
    part of what makes a latent hard to diffuse to high-frequency content that pixels do not have;
    asking that a downsampled latent decode to the downsampled video suppresses it.
    """

    def __init__(self, vae: CausalVideoVAE, latent_noise: float = 0.0, scale_equivariance: bool = False) -> None:
        super().__init__()
        self.vae, self.latent_noise, self.scale_equivariance = vae, latent_noise, scale_equivariance

    def forward(
        self, x: torch.Tensor, generator: torch.Generator, share: Share | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        posterior = self.vae.encode(x)
        z = posterior.mean + posterior.std * _draw(torch.randn, posterior.mean.shape, posterior.mean, generator, share)
        if self.latent_noise:
            # (A run without exported statistics takes the std of its batch: of the share, data-parallel.)
            z = noisy_latents(z, self.latent_noise, latent_std(self.vae, z), generator, share)
        # KL per latent value, so its weight does not depend on the clip size.
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        half = None
        if self.scale_equivariance and z.shape[-2] % 2 == 0 and z.shape[-1] % 2 == 0:
            # Cropped by decode, as the full reconstruction is, to the size halve(x) has.
            half = self.vae.decode(halve(z), x.shape[2], x.shape[3] // 2, x.shape[4] // 2)
        return self.vae.decode(z, *x.shape[2:]), kl, half


def latent_std(model: CausalVideoVAE, z: torch.Tensor) -> torch.Tensor:
    """The latent's std per channel: the exported statistics when the model has them (decoder-only
    runs), else the batch's own (a run from scratch measures its statistics only at export)."""
    if model.config.latents_std is not None:
        return torch.tensor(model.config.latents_std, device=z.device)
    return z.detach().float().std(dim=(0, 2, 3, 4))

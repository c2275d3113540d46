"""The adversarial term of the VAE objective: a small patch discriminator and hinge losses.

L1, SSIM and gradient losses are minimised by the mean of what could be there, so an 8x
decoder rounds the corners of a 13-pixel square (the analyzer then reads a circle: measured on
the shipped VAE, 7 of 9 small squares). A discriminator that judges local patches of single
frames as real or reconstructed penalises exactly that softness (Isola et al. 2017's PatchGAN,
as in the VQGAN / Stable Diffusion / Open-Sora VAEs), without a pretrained network: it is
trained here, beside the VAE, on the same batches.

Frames are judged one by one (``"b c t h w" -> "(b t) c h w"``): what is lost is spatial
detail, and a 2D network is cheap on a CPU. Losses are the hinge form (Lim & Ye 2017), which
keeps the discriminator's logits bounded. :class:`Adversary` pairs the network with its optimizer
for the VAE's training loop (``training.vae``), which checkpoints both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kinetoscope.training.distributed import World, data_parallel


@dataclass
class DiscriminatorConfig:
    """A PatchGAN: ``layers`` stride-2 convolutions from ``width`` channels (doubling), then two
    stride-1 ones; each output logit judges a patch of about ``6 * 2**layers`` pixels."""

    width: int = 32
    layers: int = 2

    def __post_init__(self) -> None:
        if self.width < 1 or self.layers < 1:
            raise ValueError(f"need width >= 1 and layers >= 1, got {self.width}, {self.layers}")


class PatchDiscriminator(nn.Module):
    """Per-patch real/fake logits ``"b t h' w'"`` of a video ``"b c t h w"`` in [-1, 1]."""

    def __init__(self, config: DiscriminatorConfig | None = None, in_channels: int = 3) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        def norm(channels: int) -> nn.GroupNorm:
            return nn.GroupNorm(8 if channels % 8 == 0 else 1, channels)

        blocks: list[nn.Module] = [nn.Conv2d(in_channels, config.width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = config.width
        for _ in range(config.layers - 1):
            blocks += [
                nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
                norm(2 * channels),
                nn.LeakyReLU(0.2),
            ]
            channels *= 2
        blocks += [
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            norm(2 * channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * channels, 1, 3, padding=1),
        ]
        self.net = nn.Sequential(*blocks)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        frames = rearrange(video, "b c t h w -> (b t) c h w")
        logits = self.net(frames)                                                          # (b t) 1 h' w'
        return rearrange(logits, "(b t) 1 h w -> b t h w", b=video.shape[0])


def generator_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """The decoder's adversarial loss: raise the discriminator's logits on reconstructions."""
    return -fake_logits.mean()


def discriminator_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: real logits above +1, reconstructions' below -1."""
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


@dataclass
class Adversary:
    """The discriminator of an adversarial run and its optimizer (betas of GAN practice: a short
    memory, since what it must tell apart keeps changing). In a data-parallel run ``synced`` is
    the network wrapped in DistributedDataParallel, which its own steps go through; the decoder's
    term reads ``net`` directly (no gradients of its own, nothing to average)."""

    net: PatchDiscriminator
    optimizer: torch.optim.Optimizer
    synced: nn.Module | None = None

    @classmethod
    def create(cls, config: DiscriminatorConfig, lr: float, device: torch.device, world: World = World()) -> Adversary:
        net = PatchDiscriminator(config).to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
        if world.size == 1:
            return cls(net, optimizer)
        return cls(net, optimizer, data_parallel(net, device))

    def step(self, real: torch.Tensor, fake: torch.Tensor, lr: float, scale: float = 1.0) -> float:
        """One discriminator step on real clips and (detached) reconstructions; returns its loss.
        ``scale`` weighs this process's share of a data-parallel batch (see ``training.vae``)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.synced is None:
            loss = discriminator_hinge(self.net(real), self.net(fake.detach()))
        else:  # one forward per backward, as DDP expects
            logits = self.synced(torch.cat([real, fake.detach()]))
            loss = discriminator_hinge(*logits.split([real.shape[0], fake.shape[0]]))
        self.optimizer.zero_grad(set_to_none=True)
        (loss * scale).backward()
        self.optimizer.step()
        return float(loss.detach())

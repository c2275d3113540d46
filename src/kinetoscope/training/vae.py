"""Training the causal video VAE: the loop, resuming, latent statistics, export.

One step: draw the mix's batch for this step, encode, sample the posterior (optionally noised
further: ``latent_noise``), decode, take the loss of ``losses.vae_loss``, clip gradients, AdamW.
The learning rate is a pure function of the step (linear warm-up, cosine decay) and the batch of
step k is a pure function of ``(seed, k)``, so a checkpoint needs only the model, the optimizer,
the step and the random states to continue exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import nn
from tqdm import tqdm

from kinetoscope.data.vae_mix import SOURCES, VAEMix, VAEMixConfig, render_clip
from kinetoscope.training import checkpoint
from kinetoscope.training.discriminator import Adversary, DiscriminatorConfig, generator_hinge
from kinetoscope.training.distributed import Share, World, current, data_parallel
from kinetoscope.training.run import LOG_NAME, PRECISIONS, StopSignals, autocast, resolve_device, trim_log, warmup_cosine
from kinetoscope.training.losses import LossConfig, psnr_per_clip, vae_loss
from kinetoscope.training.vae_roundtrip import RoundTrip, halve
from kinetoscope.vae.config import CausalVAEConfig
from kinetoscope.vae.model import CausalVideoVAE
from kinetoscope.vae.grow import deepen, refold_spatial, widen_latent


@dataclass
class VAETrainConfig:
    """A VAE training run. Defaults are the CPU recipe (fp32, small batches)."""

    model: CausalVAEConfig = field(default_factory=CausalVAEConfig)
    mix: VAEMixConfig = field(default_factory=VAEMixConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # About an hour on 2 CPU cores at the default batch: 0.43 s a step measured with the CPU to
    # itself (another busy process on the same 2 cores made it 3-8 s; see the CLI's --threads).
    steps: int = 8000
    # Measured on a smaller config over 400 steps: 2e-3 to 4e-3 beat 5e-4 and 1e-3 by ~0.8 dB;
    # halved here for the 2x wider default model, with warm-up and clipping for stability.
    lr: float = 1e-3
    # Decay to this fraction of lr, not to zero: the last steps still learn.
    min_lr_ratio: float = 0.1
    # A freshly initialised conv net with RMS norms takes large first steps; warm-up keeps
    # the first batches from throwing the weights far off.
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    checkpoint_every: int = 250
    keep_last: int = 3
    # Clips encoded at the end for the per-channel latent mean/std (17 x 64 x 64 each).
    stats_clips: int = 256
    # Train the decoder alone, the encoder frozen (needs ``init_from``): latents stay exactly as
    # they were, so a DiT and its latent cache stay valid while the decoder gets sharper.
    decoder_only: bool = False
    # Train the encoder alone, the decoder frozen (needs ``init_from``; latents change, so their
    # statistics are measured again at export). Measured on the shipped VAE: optimising a small
    # square's latent against its frame (decoder fixed) gives a square the analyzer reads as one
    # in 3 of 3 clips and +1 dB, where the encoder's latent gives a circle: the decoder can draw
    # what the encoder leaves out. But 3,000 encoder-only steps (lr 2e-4, edge weight 1) moved
    # held-out Shapes 31.41 -> 31.50 dB, photos 24.84 -> 24.87 dB and left small squares round (8
    # of 9 read as circles): the loss gives corners too little weight to pull them into the latent.
    encoder_only: bool = False
    # Decoder noise augmentation: the decoder sees z + sigma * std * noise, sigma ~ U(0, this) per
    # clip, std the latent's per channel. A DiT's latents are never exact, and decoders turn latent
    # noise of 0.2-0.4 std into objects whose area pulses within each 4-frame group (the analyzer's
    # most common miss on generated clips). Measured: 0.5 for 1,500 decoder-only steps kept area
    # under 0.4 noise in 65% of clips (57% without) but left generated clips' area misses as they
    # were and cost clean shape, so it is off by default.
    latent_noise: float = 0.0
    # Weight of the adversarial term (training.discriminator; 0 = no discriminator). Its
    # discriminator trains from the first step; the decoder reads its loss from
    # ``adversarial_start`` on, once it tells real from reconstructed at all. Measured on the
    # shipped VAE (decoder only, 1,500 steps, weight 0.05 from step 200, edge weight 1): held-out
    # Shapes 31.41 -> 31.18 dB, photos 24.84 -> 24.70 dB; small squares read as circles in 6 of 9
    # round trips (7 of 9 before): a hint (not a proof) that the corners are lost in the latent.
    adversarial_weight: float = 0.0
    adversarial_start: int = 0
    # Weight of the scale-equivariance term (vae_roundtrip.RoundTrip): the latent pooled 2 x 2 must
    # decode to the clip pooled 2 x 2, under the same reconstruction loss. It reshapes the latent,
    # so it needs the encoder to train (not with decoder_only).
    scale_equivariance_weight: float = 0.0
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    device: str = "auto"
    precision: str = "auto"  # training.run.PRECISIONS: bf16 autocast on CUDA only, unless "bf16" or "fp32"

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = CausalVAEConfig(**self.model)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if isinstance(self.mix, dict):
            self.mix = VAEMixConfig(**self.mix)
        if isinstance(self.loss, dict):
            self.loss = LossConfig(**self.loss)
        if isinstance(self.discriminator, dict):
            self.discriminator = DiscriminatorConfig(**self.discriminator)
        if not self.adversarial_weight >= 0 or self.adversarial_start < 0:
            raise ValueError(
                f"need adversarial_weight >= 0 and adversarial_start >= 0, got {self.adversarial_weight}, {self.adversarial_start}"
            )
        for name in ("steps", "checkpoint_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.decoder_only and self.encoder_only:
            raise ValueError("decoder_only and encoder_only exclude each other (nothing would train)")
        if not self.scale_equivariance_weight >= 0:
            raise ValueError(f"scale_equivariance_weight must be non-negative, got {self.scale_equivariance_weight}")
        if self.scale_equivariance_weight and self.decoder_only:
            raise ValueError("scale equivariance shapes the latent, which decoder_only freezes: train the encoder too")
        if not 0 <= self.latent_noise <= 10:
            raise ValueError(f"latent_noise must be in [0, 10] (latent standard deviations), got {self.latent_noise}")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0 or self.stats_clips < 0:
            raise ValueError(
                f"need lr > 0, 0 <= min_lr_ratio <= 1, warmup_steps >= 0 and stats_clips >= 0; got "
                f"{self.lr}, {self.min_lr_ratio}, {self.warmup_steps}, {self.stats_clips}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Latent statistics are measured at export; they do not make two architectures differ.
_STATS = {"latents_mean": None, "latents_std": None}


class ResumeMismatchError(ValueError):
    """The run folder's checkpoint was written for another model config."""


@dataclass
class TrainResult:
    """What ``train_vae`` leaves: the model, the step it reached, and this invocation's losses."""

    model: CausalVideoVAE
    step: int
    losses: list[float]
    seconds_per_step: float


def learning_rate(config: VAETrainConfig, step: int) -> float:
    """The run's learning rate at ``step`` (:func:`~kinetoscope.training.run.warmup_cosine`)."""
    return warmup_cosine(
        step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.steps, min_lr_ratio=config.min_lr_ratio
    )


def to_model_input(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``"b t h w c"`` to float ``"b c t h w"`` in [-1, 1] on ``device``."""
    x = torch.from_numpy(frames).to(device)
    return rearrange(x, "b t h w c -> b c t h w").float() / 127.5 - 1.0


def _resume(
    run_dir: Path, config: VAETrainConfig, model: CausalVideoVAE, optimizer, generator, adversary: Adversary | None
) -> int:
    """Load the newest checkpoint in ``run_dir`` into the objects; returns its step (0 if none).

    An ``adversary`` continues from the checkpoint's discriminator, or starts fresh when the run
    had none (an adversarial fine-tune continuing a plain run)."""
    path = checkpoint.latest_checkpoint(run_dir)
    if path is None:
        return 0
    state = checkpoint.load_checkpoint(path)
    if state["config"]["model"] != asdict(config.model):
        raise ResumeMismatchError(
            f"{run_dir}: holds a run of another model config; resume it with that config or use a new run folder"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    checkpoint.set_rng_state(state["rng"])
    generator.set_state(state["generator"])
    if adversary is not None and "discriminator" in state:
        adversary.net.load_state_dict(state["discriminator"])
        adversary.optimizer.load_state_dict(state["discriminator_optimizer"])
    if current().main:
        trim_log(run_dir, state["step"])
    return int(state["step"])


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    generator: torch.Generator,
    config: VAETrainConfig,
    adversary: Adversary | None = None,
    adversarial: bool = False,
    world: World = World(),
) -> dict[str, float]:
    """One optimizer step on ``x`` (``"b c t h w"``); returns the loss, its parts and the batch PSNR.

    ``model`` is a :class:`~kinetoscope.training.vae_roundtrip.RoundTrip` or its DistributedDataParallel wrapper. With an
    ``adversary`` its discriminator takes a step too, and with ``adversarial`` the decoder's loss
    includes fooling it. In a ``world`` of several processes ``x`` is the whole batch: this process
    trains on its share, every term scaled by the share's size so that the processes' average
    (DDP's gradient average) is the whole batch's; the returned values are the whole batch's.
    """
    batch = x.shape[0]
    share = Share(world, batch) if world.size > 1 else None
    if share is not None:
        x = x[world.shard(batch)]
    scale = x.shape[0] * world.size / batch  # every term is a mean over clips of one shape
    with autocast(x.device, config.precision):
        reconstruction, kl, half = model(x, generator, share)
    loss, parts = vae_loss(reconstruction, x, kl, config.loss)
    if half is not None:
        half_loss, _ = vae_loss(half, halve(x), torch.zeros_like(kl), config.loss)
        loss = loss + config.scale_equivariance_weight * half_loss
        parts["scale_eq"] = float(half_loss.detach())
    if adversary is not None and adversarial:
        adversary.net.requires_grad_(False)  # the decoder's step leaves the discriminator alone
        fooling = generator_hinge(adversary.net(reconstruction.float()))
        adversary.net.requires_grad_(True)
        loss = loss + config.adversarial_weight * fooling
        parts["adv"] = float(fooling.detach())
    optimizer.zero_grad(set_to_none=True)
    (loss * scale).backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
    optimizer.step()
    if adversary is not None:
        parts["disc"] = adversary.step(x, reconstruction.float(), optimizer.param_groups[0]["lr"], scale)
    parts |= {"loss": float(loss.detach()), "psnr": float(psnr_per_clip(reconstruction.detach(), x).mean())}
    return {name: world.mean(value * scale) for name, value in parts.items()}


def train_vae(
    config: VAETrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = True,
    stop_at: int | None = None,
    progress: bool = True,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train (or continue training) a VAE in ``run_dir`` up to ``config.steps`` steps.

    With ``resume`` the newest checkpoint in ``run_dir`` is loaded first; a run with none starts
    from the weights of the exported VAE ``init_from`` when given (its latent widened first when
    ``config.model`` asks for more channels: :func:`~kinetoscope.vae.grow.widen_latent`; refolded
    when it asks for another spatial compression or fewer channels:
    :func:`~kinetoscope.vae.grow.refold_spatial`; and deepened when it asks for more residual
    blocks: :func:`~kinetoscope.vae.grow.deepen`).
    ``stop_at`` ends the invocation early at that step, with a checkpoint, as an interruption
    would; a later call resumes from there. Ctrl-C (or SIGTERM) finishes the current step, saves a
    checkpoint and raises KeyboardInterrupt.
    """
    world = current()
    if world.size > config.mix.batch_size:
        raise ValueError(f"a batch of {config.mix.batch_size} clips is fewer than the {world.size} training processes")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = world.place(resolve_device(config.device))
    torch.manual_seed(config.mix.seed)
    model = CausalVideoVAE(config.model).to(device)
    if config.decoder_only or config.encoder_only:
        if init_from is None and checkpoint.latest_checkpoint(run_dir) is None:
            part = "decoder_only" if config.decoder_only else "encoder_only"
            raise ValueError(f"{part} fine-tunes an exported VAE: give init_from")
        (model.encoder if config.decoder_only else model.decoder).requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator(device=device).manual_seed(config.mix.seed)
    adversary = Adversary.create(config.discriminator, config.lr, device, world) if config.adversarial_weight else None
    step = _resume(run_dir, config, model, optimizer, generator, adversary) if resume else 0
    if step == 0 and init_from is not None:
        # Fine-tuning: start from exported weights (same architecture) with a fresh optimizer.
        start = CausalVideoVAE.from_pretrained(init_from)
        frozen = config.decoder_only or config.encoder_only
        refold = start.spatial_compression != config.model.spatial_compression
        if not frozen and (refold or start.latent_channels > config.model.latent_channels):
            start = refold_spatial(start, config.model.spatial_compression, config.model.latent_channels, seed=config.mix.seed)
        elif not frozen and start.latent_channels < config.model.latent_channels:
            start = widen_latent(start, config.model.latent_channels, torch.Generator().manual_seed(config.mix.seed))
        layers = {"encoder_layers": config.model.encoder_layers, "decoder_layers": config.model.decoder_layers}
        if any(getattr(start.config, name) != value for name, value in layers.items()):
            try:
                start = deepen(start, **layers)
            except ValueError as err:
                raise ResumeMismatchError(f"{init_from}: {err}") from None
        if asdict(start.config) | _STATS != asdict(config.model) | _STATS:
            raise ResumeMismatchError(f"{init_from}: holds a VAE of another architecture than this run's config")
        model.load_state_dict(start.state_dict())
    end = min(config.steps, stop_at) if stop_at is not None else config.steps
    mix = VAEMix(config.mix)
    # Every process starts from the same weights (loaded, or seeded alike); DDP checks and keeps them so.
    roundtrip = RoundTrip(model, config.latent_noise, scale_equivariance=config.scale_equivariance_weight > 0)
    if world.size > 1:
        roundtrip = data_parallel(roundtrip, device)

    def save() -> None:
        state = {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": checkpoint.rng_state(),
            "generator": generator.get_state(),
            "config": config.to_dict(),
        }
        if adversary is not None:
            state["discriminator"] = adversary.net.state_dict()
            state["discriminator_optimizer"] = adversary.optimizer.state_dict()
        checkpoint.save_checkpoint(state, run_dir, step, keep_last=config.keep_last)

    losses: list[float] = []
    started, first_step, smoothed = time.perf_counter(), step, None
    model.train()
    with (
        tqdm(total=config.steps, initial=step, disable=not progress or not world.main, unit="step", dynamic_ncols=True) as bar,
        open(run_dir / LOG_NAME if world.main else os.devnull, "a", buffering=1) as log,  # line-buffered: `tail -f` follows
        StopSignals() as stop,
    ):
        while step < end:
            tic = time.perf_counter()
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = to_model_input(mix.batch(step).frames, device)
            parts = _train_step(roundtrip, optimizer, x, generator, config, adversary, step >= config.adversarial_start, world)
            step += 1
            losses.append(parts["loss"])
            smoothed = parts["loss"] if smoothed is None else 0.9 * smoothed + 0.1 * parts["loss"]
            frames_per_s = x.shape[0] * x.shape[2] / (time.perf_counter() - tic)
            bar.set_postfix(loss=f"{smoothed:.4f}", psnr=f"{parts['psnr']:.1f}", fps=f"{frames_per_s:.0f}")
            bar.update(1)
            seconds = time.perf_counter() - tic
            log.write(json.dumps({"step": step, "lr": lr, **parts, "seconds": round(seconds, 3)}) + "\n")
            stopping = world.any(stop.requested)  # every process stops after the same step
            if world.main and (step % config.checkpoint_every == 0 or step == end or stopping):
                save()
            if stopping:
                raise KeyboardInterrupt
    seconds = (time.perf_counter() - started) / max(1, step - first_step)
    return TrainResult(model=model, step=step, losses=losses, seconds_per_step=seconds)


@torch.no_grad()
def latent_statistics(
    model: CausalVideoVAE, mix_config: VAEMixConfig, num_clips: int, *, batch_size: int = 8, seed: int = 0,
    precision: str = "auto",
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the posterior mode over ``num_clips`` training-mix clips.

    Clips are 17 x 64 x 64, the DiT's working size, from the mix's sources in its proportions.
    """
    if num_clips < 2:
        raise ValueError(f"num_clips must be at least 2 for a standard deviation, got {num_clips}")
    device = next(model.parameters()).device
    weights = mix_config.source_weights()
    rng = np.random.default_rng((seed, 0x57A75))
    sources = rng.choice(SOURCES, size=num_clips, p=weights / weights.sum())
    seeds = rng.integers(0, 2**40, size=num_clips)
    total = total_sq = None
    count = 0
    model.eval()
    for start in range(0, num_clips, batch_size):
        chunk = zip(sources[start : start + batch_size], seeds[start : start + batch_size])
        frames = np.stack([render_clip(str(s), int(k), num_frames=17, height=64, width=64) for s, k in chunk])
        with autocast(device, precision):
            z = model.encode(to_model_input(frames, device)).mode().double()
        per_channel = rearrange(z, "b l t h w -> l (b t h w)")
        total = per_channel.sum(1) if total is None else total + per_channel.sum(1)
        total_sq = per_channel.pow(2).sum(1) if total_sq is None else total_sq + per_channel.pow(2).sum(1)
        count += per_channel.shape[1]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def finalize(model: CausalVideoVAE, config: VAETrainConfig, export_dir: str | Path | None) -> CausalVideoVAE:
    """Store the latent statistics in the model's config and, when asked, ``save_pretrained`` it.

    A decoder-only run keeps the statistics it started with: its latents have not changed.
    """
    if config.stats_clips and not config.decoder_only:
        mean, std = latent_statistics(model, config.mix, config.stats_clips, precision=config.precision)
        model.set_latent_stats(mean, std)
    if export_dir is not None:
        model.save_pretrained(export_dir)
    return model

"""What one training step of the diffusion transformer computes, apart from the loop around it.

:func:`draw_batch` picks a bucket (one latent shape, so the batch stacks), draws clips, their
given-frame masks and dropped captions; :func:`diffusion_loss` noises the rest of each clip to a
logit-normal time and regresses the velocity on the frames that are not given, plus the optional
binding, grounding and decoded terms; :func:`validation_loss` is the same loss at fixed times and noise.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.diffusion import (
    add_noise,
    flow_loss,
    motion_weights,
    predict_x0,
    sample_timesteps,
    shift_for_tokens,
    velocity_target,
)
from kinetoscope.patches import patch_grid
from kinetoscope.training.binding import binding_loss, exchanged_captions
from kinetoscope.training.decoded_loss import decoded_loss
from kinetoscope.training.denoiser import Denoiser
from kinetoscope.training.distributed import World
from kinetoscope.training.dit_config import DiTTrainConfig
from kinetoscope.training.frame_masks import sample_frame_masks
from kinetoscope.training.grounding import ClipGrounding, Grounder, grounding_loss
from kinetoscope.transformer.attention_tap import AttentionTap


def tokens_per_clip(shape: tuple[int, ...], patch: tuple[int, int, int]) -> int:
    """Patch tokens of one latent clip of ``shape`` ``(c, t, h, w)``."""
    return math.prod(patch_grid(tuple(shape[1:]), patch))


@dataclass
class DiTBatch:
    """One step's inputs: clean latents ``"b c t h w"``, captions, and given frames ``"b t"``;
    with ``binding_weight``, each caption with its objects' ``binding_attributes`` exchanged (or None);
    with ``grounding_weight``, each clip's object tokens and words (or None); with ``still_weight``,
    the share of each latent cell a still object covers, ``"b 1 t h w"``."""

    latents: torch.Tensor
    captions: list[str]
    given: torch.Tensor
    exchanged: list[str | None] | None = None
    grounding: list[ClipGrounding | None] | None = None
    still: torch.Tensor | None = None


def clip_weights(bucket: LatentBucket, two_object_weight: float) -> torch.Tensor | None:
    """How often each clip of ``bucket`` is drawn, relative to the others: ``two_object_weight`` for
    clips whose scene record holds two objects, 1 for the rest; None (uniform) when that is 1 or
    no clip has a scene record."""
    if two_object_weight == 1 or not any(r.get("scene") for r in bucket.records):
        return None
    two = [len((r.get("scene") or {}).get("objects", ())) == 2 for r in bucket.records]
    return torch.tensor([two_object_weight if t else 1.0 for t in two], dtype=torch.float64)


def draw_batch(
    config: DiTTrainConfig,
    buckets: list[LatentBucket],
    weights: torch.Tensor,
    generator: torch.Generator,
    grounder: Grounder | None = None,
    clip_draws: list[torch.Tensor | None] | None = None,
) -> DiTBatch:
    """Pick a bucket by weight and fill a batch of ``tokens_per_batch`` tokens from it (``grounder``:
    the clips' groundings too, for ``grounding_weight``, and their still objects' cover, for
    ``still_weight``; ``clip_draws``: per bucket, its :func:`clip_weights`)."""
    choice = int(torch.multinomial(weights, 1, generator=generator))
    bucket = buckets[choice]
    size = max(1, config.tokens_per_batch // tokens_per_clip(bucket.shape, config.model.patch_size))
    draws = clip_draws[choice] if clip_draws is not None else None
    if draws is None:
        index = torch.randint(bucket.latents.shape[0], (size,), generator=generator)
    else:
        index = torch.multinomial(draws, size, replacement=True, generator=generator)
    captions = [bucket.records[i]["text"] for i in index.tolist()]
    dropped = (torch.rand(size, generator=generator) < config.caption_dropout).tolist()
    captions = ["" if drop else text for text, drop in zip(captions, dropped, strict=True)]
    given = sample_frame_masks(size, bucket.shape[1], config.masks, generator)
    records = [bucket.records[i] for i in index.tolist()]
    exchanged = exchanged_captions(records, captions, config.binding_attributes) if config.binding_weight > 0 else None
    grounded = grounder is not None and config.grounding_weight > 0
    grounding = grounder.batch(records, captions, bucket.shape) if grounded else None
    still = None
    if grounder is not None and config.still_weight > 0:
        still = torch.stack([grounder.still_cover(r, bucket.shape) for r in records])[:, None]     # b 1 t h w
    return DiTBatch(bucket.latents[index], captions, given, exchanged, grounding, still)


# Chen et al. 2022 train half the steps with the model's own estimate and half with zeros, so the
# model works at the sampler's first step (no estimate yet) and at every later one.
SELF_CONDITION_RATE = 0.5


def self_condition_estimate(
    denoiser: torch.nn.Module, x_t: torch.Tensor, t_frames: torch.Tensor, captions: Sequence[str], use: torch.Tensor
) -> torch.Tensor:
    """The clean estimate a self-conditioned model trains with: its own no-grad prediction from
    ``x_t`` for the clips where ``use`` ``"b"`` is True (what the sampler's previous step gives it),
    zeros (no estimate, as at the first step) for the rest."""
    estimate = torch.zeros_like(x_t)
    chosen = use.nonzero()[:, 0].tolist()
    if chosen:
        with torch.no_grad():
            v = denoiser(x_t[chosen], t_frames[chosen], [captions[i] for i in chosen])
            estimate[chosen] = predict_x0(x_t[chosen], v, t_frames[chosen])
    return estimate


def diffusion_loss(
    denoiser: torch.nn.Module,
    batch: DiTBatch,
    config: DiTTrainConfig,
    generator: torch.Generator,
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    parts: dict[str, float] | None = None,
    world: World | None = None,
    self_condition_rate: float = SELF_CONDITION_RATE,
) -> torch.Tensor:
    """Rectified-flow loss of one batch: given frames at t = 0 and out of the loss.

    ``denoiser`` is a :class:`Denoiser` or its DistributedDataParallel wrapper. With ``decode``
    (normalised latents to pixels) and ``config.decoded_weight`` above 0, plus the weighted
    :func:`~kinetoscope.training.decoded_loss.decoded_loss` of the one-step prediction; ``parts``
    (when given) receives that term unweighted, as ``"decoded"``. A model with
    ``self_condition`` reads its own no-grad estimate (:func:`self_condition_estimate`) in a
    random ``self_condition_rate`` of the clips (1: in all, drawing nothing). With ``config.binding_weight``
    above 0 and exchanged captions in the batch, plus the weighted
    :func:`~kinetoscope.training.binding.binding_loss` (``parts["binding"]``); with
    ``config.grounding_weight`` and groundings in the batch, the weighted
    :func:`~kinetoscope.training.grounding.grounding_loss` (``parts["grounding"]``).

    With a ``world`` of several processes, times and noise are drawn for the whole batch (the
    same draws in every process) and this process's share of clips is denoised; its loss is
    scaled so that the mean of the shares' losses, which DistributedDataParallel's gradient
    average differentiates, is the whole batch's loss.
    """
    device = next(denoiser.parameters()).device
    x0 = batch.latents.to(device)
    b, _, t, h, w = x0.shape
    shift = shift_for_tokens(tokens_per_clip(x0.shape[1:], config.model.patch_size))
    times = sample_timesteps(b, generator, logit_mean=config.logit_mean, logit_std=config.logit_std, shift=shift)
    given = batch.given.to(device)[:, None, :, None, None]                                       # b 1 t 1 1
    t_frames = torch.where(given, 0.0, times.to(device)[:, None, None, None, None])              # b 1 t 1 1
    noise = torch.randn(x0.shape, generator=generator).to(device)
    x_t = add_noise(x0, noise, t_frames)
    weight = motion_weights(x0, config.motion_weight)                                         # b 1 t h w
    if batch.still is not None:
        weight = weight + config.still_weight * batch.still.to(device)
    weight = (~given).float() * weight  # given frames are out of the loss
    # Drawn after the noise, and only for such a model, so other runs keep their random stream.
    use = None
    if config.model.self_condition:
        use = torch.ones(b, dtype=torch.bool) if self_condition_rate >= 1 else torch.rand(b, generator=generator) < self_condition_rate
    if world is not None and world.size > 1:  # (train_dit refuses decoded_weight and binding_weight here)
        share = world.shard(b)
        estimate = None if use is None else self_condition_estimate(
            denoiser, x_t[share], t_frames[share], batch.captions[share], use[share]
        )  # fmt: skip
        v = denoiser(x_t[share], t_frames[share], batch.captions[share], self_condition=estimate)
        loss = flow_loss(v, velocity_target(x0[share], noise[share]), weight[share])
        # flow_loss divided by this share's weight; the whole batch's, times the process count, instead.
        kept = weight[share].expand_as(v).sum().clamp_min(1.0)
        return loss * kept / weight.expand_as(x0).sum().clamp_min(1.0) * world.size
    grounded = config.grounding_weight > 0 and batch.grounding is not None and any(g is not None for g in batch.grounding)
    estimate = None if use is None else self_condition_estimate(denoiser, x_t, t_frames, batch.captions, use)
    with AttentionTap(denoiser.transformer) if grounded else contextlib.nullcontext() as tap:
        v = denoiser(x_t, t_frames, batch.captions, self_condition=estimate)
    target = velocity_target(x0, noise)
    loss = flow_loss(v, target, weight)
    if grounded:
        term = grounding_loss(tap.video_to_text(tokens_per_clip(x0.shape[1:], config.model.patch_size)), batch.grounding)
        if term is not None:
            if parts is not None:
                parts["grounding"] = float(term.detach())
            loss = loss + config.grounding_weight * term
    if config.binding_weight > 0 and batch.exchanged is not None:
        term = binding_loss(denoiser, x_t, t_frames, times, v, target, weight, batch.exchanged,
                            temperature=config.binding_temperature, min_t=config.binding_min_t)  # fmt: skip
        if term is not None:
            if parts is not None:
                parts["binding"] = float(term.detach())
            loss = loss + config.binding_weight * term
    if decode is None or config.decoded_weight == 0:
        return loss
    # Given frames' predictions are x0 itself (t = 0), so they add nothing here either.
    x0_pred = predict_x0(x_t, v, t_frames)
    pixels = decoded_loss(decode, x0, x0_pred, times, max_t=config.decoded_max_t, clips=config.decoded_clips)
    if parts is not None:
        parts["decoded"] = float(pixels.detach())
    return loss + config.decoded_weight * pixels


@torch.no_grad()
def validation_loss(denoiser: Denoiser, bucket: LatentBucket, config: DiTTrainConfig, seed: int = 0) -> float:
    """Mean loss of ``denoiser`` over every clip of ``bucket`` as text-to-video (nothing given, no
    caption dropped), each clip's time and noise fixed by ``seed``: comparable across steps and runs.
    A self-conditioned model reads its own estimate in every clip, as at every sampling step but
    the first."""
    generator = torch.Generator().manual_seed(seed)
    size = max(1, config.tokens_per_batch // tokens_per_clip(bucket.shape, config.model.patch_size))
    was_training = denoiser.training
    denoiser.eval()
    total = 0.0
    for start in range(0, bucket.latents.shape[0], size):
        latents = bucket.latents[start : start + size]
        captions = [r["text"] for r in bucket.records[start : start + size]]
        given = torch.zeros(latents.shape[0], bucket.shape[1], dtype=torch.bool)
        loss = diffusion_loss(denoiser, DiTBatch(latents, captions, given), config, generator, self_condition_rate=1.0)
        total += float(loss) * len(captions)
    denoiser.train(was_training)
    return total / bucket.latents.shape[0]

"""Where a DiT's video tokens on an object look in the caption: its own words against the other object's.

For two-object Shapes World clips (both moving, in different directions) the tokens that hold
an object (its box centre inside the token's pixels, in the token's frames) are followed through
every attention layer at a fixed noise level, and their attention probabilities are summed over
each object phrase's words: the noun part (``a large red circle``) and the motion part
(``moves slowly to the right``). A model that ties words to their object puts more of its text
attention on its own phrase than on the other's; equal shares mean the object reads both
phrases alike, so its motion is a blend of the two.

The shipped model (32 held-out clips, :func:`binding_clips`): of the attention on either motion
phrase, 0.515 goes to the object's own at t = 0.9 and 0.553 at t = 0.5; of the noun phrases,
0.562 and 0.741. At t = 0.9 every head reads the two motion phrases alike (block 0, head 3:
0.229 / 0.228); only from t = 0.5 do a few heads tell them apart (block 1, head 1: own noun 0.645
against 0.124; block 3, head 1: own motion 0.103 against 0.044). The trajectory is laid down at
high noise, where no head binds yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from kinetoscope.diffusion import add_noise
from kinetoscope.evaluation.ceiling import HELDOUT_SEED
from kinetoscope.patches import patch_grid
from kinetoscope.shapes.object_tokens import ObjectWords, object_tokens, object_word_spans
from kinetoscope.shapes.render import RenderedClip, render_random_clip
from kinetoscope.text import WordTextEncoder
from kinetoscope.transformer.attention_tap import AttentionTap


@torch.no_grad()
def word_attention(
    transformer: torch.nn.Module,
    text_encoder,
    latents: Tensor,
    captions: Sequence[str],
    tokens: Sequence[Sequence[Sequence[int]]],
    spans: Sequence[Sequence[ObjectWords]],
    t: float,
    *,
    seed: int = 0,
) -> list[dict]:
    """Attention of two-object clips' object tokens at noise time ``t``, one row per block and head:
    ``text`` (the share on all text tokens), ``own_noun``, ``other_noun``, ``own_motion``,
    ``other_motion`` (the shares on each phrase part), averaged over the objects' tokens and the
    objects. ``latents`` ``"b c t h w"`` are clean normalised latents of ``captions``; ``tokens``
    and ``spans`` per clip and object, from :func:`object_tokens` and :func:`object_word_spans`.
    """
    if not 0 <= t <= 1:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    if not len(captions) == len(tokens) == len(spans) == latents.shape[0]:
        raise ValueError(f"got {latents.shape[0]} latents, {len(captions)} captions, {len(tokens)} token lists, {len(spans)} spans")
    device = next(transformer.parameters()).device
    x0 = latents.float().to(device)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    text = text_encoder.encode(list(captions), device)
    with AttentionTap(transformer) as tap:
        transformer(add_noise(x0, noise, t), torch.full((x0.shape[0],), t, device=device), text.hidden, text.mask)
    maps = tap.video_to_text_probabilities(math.prod(patch_grid(tuple(x0.shape[2:]), transformer.config.patch_size)))
    rows = []
    names = ("text", "own_noun", "other_noun", "own_motion", "other_motion")
    for block, probs in enumerate(maps):                                                       # b h n l
        totals, count = torch.zeros(len(names), probs.shape[1]), 0
        for i, (clip_tokens, clip_spans) in enumerate(zip(tokens, spans, strict=True)):
            for o, own in enumerate(clip_spans):
                if not clip_tokens[o]:
                    continue
                other = clip_spans[1 - o]
                rows_of = probs[i, :, clip_tokens[o]].cpu()                                     # h q l
                parts = [(0, probs.shape[-1]), own.noun, other.noun, own.motion, other.motion]
                totals += torch.stack([rows_of[..., a:b].sum(-1).mean(-1) for a, b in parts])
                count += 1
        for head in range(probs.shape[1]):
            rows.append({"t": t, "block": block, "head": head} | {n: float(totals[j, head]) / max(count, 1) for j, n in enumerate(names)})
    return rows


def binding_clips(count: int, *, seed: int = HELDOUT_SEED) -> list[RenderedClip]:
    """``count`` held-out two-object clips whose objects both move, in different directions."""
    clips, index = [], 0
    while len(clips) < count:
        clip = render_random_clip(seed + index, num_objects=2)
        index += 1
        a, b = clip.scene.objects
        if "still" not in (a.direction, b.direction) and a.direction != b.direction:
            clips.append(clip)
    return clips


def measure_word_attention(pipe, clips: Sequence[RenderedClip], times: Sequence[float], *, seed: int = 0) -> list[dict]:
    """:func:`word_attention` rows of ``pipe``'s transformer on ``clips`` at each of ``times``.

    Needs the word text encoder (its ids are the caption's words); raises ValueError otherwise.
    """
    if not isinstance(pipe.text_encoder, WordTextEncoder):
        raise ValueError("word attention needs a model with the word text encoder (its tokens are the caption's words)")
    latents = torch.cat([pipe.encode(clip.frames) for clip in clips])
    patch = tuple(pipe.transformer.config.patch_size)
    tokens = [
        object_tokens(clip.boxes, tuple(latents.shape[2:]), patch, spatial_compression=pipe.vae.spatial_compression,
                      temporal_compression=pipe.vae.temporal_compression)  # fmt: skip
        for clip in clips
    ]
    spans = [object_word_spans(clip.caption, clip.scene) for clip in clips]
    captions = [clip.caption for clip in clips]
    return [row for t in times for row in word_attention(pipe.transformer, pipe.text_encoder, latents, captions, tokens, spans, t, seed=seed)]


def own_share(rows: Sequence[dict], part: str) -> float:
    """Of all the attention ``rows`` put on either object's ``part`` ("noun" or "motion"), the share
    on the object's own: 0.5 when the phrases are read alike, 1 when only its own is."""
    own = sum(r[f"own_{part}"] for r in rows)
    return own / max(own + sum(r[f"other_{part}"] for r in rows), 1e-12)

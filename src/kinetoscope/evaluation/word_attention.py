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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kinetoscope.diffusion import add_noise
from kinetoscope.evaluation.ceiling import HELDOUT_SEED
from kinetoscope.patches import patch_grid
from kinetoscope.shapes.render import RenderedClip, render_random_clip
from kinetoscope.shapes.spec import SceneSpec, object_phrase
from kinetoscope.text import WordTextEncoder
from kinetoscope.text.tokenizer import split_words
from kinetoscope.transformer.attention import attention_weights


@dataclass(frozen=True)
class ObjectWords:
    """Token index spans ``[start, stop)`` of one object's phrase in the word tokenizer's ids."""

    noun: tuple[int, int]
    motion: tuple[int, int]


def object_word_spans(caption: str, scene: SceneSpec) -> list[ObjectWords]:
    """The noun and motion spans of each moving object of ``scene`` in ``caption``'s word ids
    (``<bos>`` first, as :class:`~kinetoscope.text.tokenizer.WordTokenizer` makes them).

    Raises ValueError when an object's phrase is not in the caption or the object stays still.
    """
    words = split_words(caption)
    spans, start = [], 0
    for obj in scene.objects:
        phrase = split_words(object_phrase(obj))
        if "moves" not in phrase:
            raise ValueError(f"the {obj.color} {obj.shape} stays still: it has no motion words")
        at = next((i for i in range(start, len(words) - len(phrase) + 1) if words[i : i + len(phrase)] == phrase), None)
        if at is None:
            raise ValueError(f"caption {caption!r} does not hold the phrase {' '.join(phrase)!r}")
        verb = at + phrase.index("moves")
        spans.append(ObjectWords(noun=(1 + at, 1 + verb), motion=(1 + verb, 1 + at + len(phrase))))
        start = at + len(phrase)
    return spans


def object_tokens(
    boxes: np.ndarray,
    latent_shape: tuple[int, int, int],
    patch_size: tuple[int, int, int],
    *,
    spatial_compression: int,
    temporal_compression: int,
) -> list[list[int]]:
    """Per object, the video token indices (patchify's ``t h w`` order) holding its box centre.

    ``boxes`` ``"t o 4"`` are pixel boxes per frame; latent frame 0 holds pixel frame 0 and latent
    frame ``k`` the frames ``(k - 1) * tc + 1 .. k * tc`` (the causal VAE), whose mean centre is
    used. Tokens that hold both objects' centres are left out: they say nothing about binding.
    """
    gt, gh, gw = patch_grid(latent_shape, patch_size)
    pt, ph, pw = patch_size
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2                                           # t o 2 (x, y)
    per_object = []
    for o in range(boxes.shape[1]):
        tokens = []
        for k in range(latent_shape[0]):
            frames = [0] if k == 0 else range((k - 1) * temporal_compression + 1, k * temporal_compression + 1)
            frames = [f for f in frames if f < len(centres)]
            if not frames:
                continue
            x, y = centres[frames, o].mean(axis=0)
            row = min(int(y // (ph * spatial_compression)), gh - 1)
            col = min(int(x // (pw * spatial_compression)), gw - 1)
            tokens.append(((k // pt) * gh + row) * gw + col)
        per_object.append(list(dict.fromkeys(tokens)))  # a token spanning several latent frames counts once
    shared = set.intersection(*(set(t) for t in per_object)) if len(per_object) > 1 else set()
    return [[i for i in t if i not in shared] for t in per_object]


class _AttentionRecorder:
    """Forward hooks on every block's text attention keeping the video-to-text probabilities
    ``"b h n l"`` (joint mode: the video queries' rows, text columns; cross mode: all of it)."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        self.joint = transformer.config.text_conditioning == "joint"
        self.text_length = 0
        self.maps: list[Tensor] = []
        layers = [b.attn if self.joint else b.cross_attn for b in transformer.blocks]
        self.handles = [layer.register_forward_hook(self._hook) for layer in layers]

    def _hook(self, module: torch.nn.Module, args: tuple, output: Tensor) -> None:
        x, other, mask = (*args, None)[:3]
        q, k, _ = module.project(x, other)
        p = attention_weights(q.float(), k.float(), mask)
        l = self.text_length
        self.maps.append(p[:, :, l:, :l] if self.joint else p)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


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
    recorder = _AttentionRecorder(transformer)
    recorder.text_length = text.hidden.shape[1]
    try:
        transformer(add_noise(x0, noise, t), torch.full((x0.shape[0],), t, device=device), text.hidden, text.mask)
    finally:
        recorder.close()
    rows = []
    names = ("text", "own_noun", "other_noun", "own_motion", "other_motion")
    for block, maps in enumerate(recorder.maps):                                               # b h n l
        totals, count = torch.zeros(len(names), maps.shape[1]), 0
        for i, (clip_tokens, clip_spans) in enumerate(zip(tokens, spans, strict=True)):
            for o, own in enumerate(clip_spans):
                if not clip_tokens[o]:
                    continue
                other = clip_spans[1 - o]
                rows_of = maps[i, :, clip_tokens[o]].cpu()                                      # h q l
                parts = [(0, maps.shape[-1]), own.noun, other.noun, own.motion, other.motion]
                totals += torch.stack([rows_of[..., a:b].sum(-1).mean(-1) for a, b in parts])
                count += 1
        for head in range(maps.shape[1]):
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

"""A loss that points each object's video tokens at its own caption words: attention grounding.

``eval word-attention`` shows why two-object motion blends: of the attention the shipped model's
object tokens put on either object's motion words, 0.515 goes to their own at t = 0.9 and 0.553 at
t = 0.5, and the binding loss (``training.binding``) that moved direction in ``eval t2v`` moved this
share too (0.596 at t = 0.5 for weight 10, 0.557 for its control). This term asks for the share
itself, as TokenCompose (Wang et al. 2024) supervises a text-to-image model's cross-attention with
object masks: for two-object clips with their canonical caption and scene record, the tokens that
hold each object are known (:mod:`kinetoscope.shapes.object_tokens`, from the record's
start-position seed), and in every block and head the loss is

    -log( sum_own exp(s) / sum_(own and other) exp(s) )

over the attention logits ``s`` of an object token to the two objects' noun words ("a large red
circle"), and likewise to their motion words ("moves slowly to the right"), averaged. It leaves the
other keys out of the ratio, so it says how a head splits its reading between the two phrases, not
how much it reads the text.

Measured (a 1,200-step fine-tune of the shipped model at weight 0.2 against the same without,
``eval t2v`` suite seeds 0-3): the share rose as asked (motion words 0.863 at t = 0.5 against 0.557,
the term from 0.74 to 0.25) and nothing downstream moved: two-object direction misses 395 of 632
objects against 388 (p = 0.68), the exchanged-direction loss gap at t = 0.7 0.005 against 0.007,
one-object all-correct 113 of 316 against 120, validation loss 0.232 against 0.227. Off by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kinetoscope.shapes.object_tokens import ObjectWords, object_tokens, object_word_spans
from kinetoscope.shapes.render import position_rng, scene_boxes
from kinetoscope.shapes.spec import SceneSpec, canonical_caption


@dataclass(frozen=True)
class ClipGrounding:
    """One two-object clip's video tokens per object and its phrases' word spans, per object."""

    tokens: tuple[tuple[int, ...], ...]
    spans: tuple[ObjectWords, ...]


@dataclass(frozen=True)
class Grounder:
    """Groundings of batch clips from their cache records, for a VAE of these compressions, and the
    latent cells their still objects cover (``still_weight``)."""

    patch_size: tuple[int, int, int]
    spatial_compression: int
    temporal_compression: int

    def clip(self, record: Mapping[str, Any], caption: str, latent_shape: Sequence[int]) -> ClipGrounding | None:
        """The grounding of a clip of latent ``(c, t, h, w)`` whose record holds a two-object ``"scene"``
        and its start-position ``"seed"``, where ``caption`` is that scene's canonical caption (not
        dropped, not paraphrased) and both objects have tokens of their own; else None."""
        if record.get("scene") is None or record.get("seed") is None:
            return None
        scene = SceneSpec.from_dict(record["scene"])
        if len(scene.objects) != 2 or caption != canonical_caption(scene):
            return None
        _, t, h, w = latent_shape
        s, tc = self.spatial_compression, self.temporal_compression
        # (t - 1) * tc + 1 frames: a 16-frame clip's 5 latent frames cover 17, the 17th the VAE's padding.
        boxes = scene_boxes(scene, position_rng(int(record["seed"])), height=h * s, width=w * s, num_frames=(t - 1) * tc + 1)
        tokens = object_tokens(boxes, (t, h, w), self.patch_size, spatial_compression=s, temporal_compression=tc)
        if not all(tokens):
            return None
        return ClipGrounding(tuple(map(tuple, tokens)), tuple(object_word_spans(caption, scene)))

    def batch(
        self, records: Sequence[Mapping[str, Any]], captions: Sequence[str], latent_shape: Sequence[int]
    ) -> list[ClipGrounding | None]:
        """:meth:`clip` of every clip of a batch (its records and the captions the batch gives it)."""
        return [self.clip(r, c, latent_shape) for r, c in zip(records, captions, strict=True)]

    def still_cover(self, record: Mapping[str, Any], latent_shape: Sequence[int]) -> Tensor:
        """``"t h w"``: the share of each latent cell covered by the box of an object the clip's
        ``"scene"`` keeps still (0 to 1; summed over such objects, capped at 1), the same in every
        latent frame; zeros for a clip without one or without a scene record."""
        _, t, h, w = latent_shape
        cover = torch.zeros(h, w)
        if record.get("scene") is None or record.get("seed") is None:
            return cover.expand(t, h, w)
        scene = SceneSpec.from_dict(record["scene"])
        if all(o.direction != "still" for o in scene.objects):
            return cover.expand(t, h, w)
        s = self.spatial_compression
        boxes = scene_boxes(scene, position_rng(int(record["seed"])), height=h * s, width=w * s, num_frames=1)[0]
        edges_y, edges_x = torch.arange(h + 1.0) * s, torch.arange(w + 1.0) * s
        for obj, (x0, y0, x1, y1) in zip(scene.objects, boxes.tolist(), strict=True):
            if obj.direction == "still":
                rows = (edges_y[1:].clamp(max=y1) - edges_y[:-1].clamp(min=y0)).clamp(min=0) / s      # h
                cols = (edges_x[1:].clamp(max=x1) - edges_x[:-1].clamp(min=x0)).clamp(min=0) / s      # w
                cover = cover + rows[:, None] * cols[None, :]
        return cover.clamp(max=1.0).expand(t, h, w)


def _queries(groundings: Sequence[ClipGrounding | None], text_length: int, device: torch.device):
    """Each object token as a query: its clip, its token, and per part (noun, motion) the masks
    ``"q l"`` of its own words and of both objects' words."""
    clips, tokens, own, both = [], [], {"noun": [], "motion": []}, {"noun": [], "motion": []}
    for i, g in enumerate(groundings):
        if g is None:
            continue
        for o, held in enumerate(g.tokens):
            for token in held:
                clips.append(i)
                tokens.append(token)
                for part in ("noun", "motion"):
                    mine, theirs = (torch.zeros(text_length, dtype=torch.bool) for _ in range(2))
                    mine[slice(*getattr(g.spans[o], part))] = True
                    theirs[slice(*getattr(g.spans[1 - o], part))] = True
                    own[part].append(mine)
                    both[part].append(mine | theirs)
    if not clips:
        return None
    stack = {part: (torch.stack(own[part]).to(device), torch.stack(both[part]).to(device)) for part in own}
    return torch.tensor(clips, device=device), torch.tensor(tokens, device=device), stack


def grounding_loss(attention: Sequence[tuple[Tensor, Tensor, Tensor | None]], groundings: Sequence[ClipGrounding | None]) -> Tensor | None:
    """The mean over blocks, heads, object tokens and the two parts of minus the log own share;
    None when no clip is grounded. ``attention`` is per block the video queries ``"b h n e"`` and
    text keys ``"b h l e"`` (:meth:`~kinetoscope.transformer.attention_tap.AttentionTap.video_to_text`)."""
    q0, k0, _ = attention[0]
    picked = _queries(groundings, k0.shape[2], k0.device)
    if picked is None:
        return None
    clips, tokens, masks = picked
    total = q0.new_zeros((), dtype=torch.float32)
    for q, k, _ in attention:
        queries = q[clips, :, tokens].float()                                                  # q h e
        logits = torch.einsum("qhe,qhle->qhl", queries, k[clips].float()) * q.shape[-1] ** -0.5  # q h l
        for mine, both in masks.values():
            own = logits.masked_fill(~mine[:, None], float("-inf")).logsumexp(-1)                 # q h
            all_ = logits.masked_fill(~both[:, None], float("-inf")).logsumexp(-1)               # q h
            total = total - (own - all_).mean()
    return total / (2 * len(attention))

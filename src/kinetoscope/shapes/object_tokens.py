"""Which video tokens hold each Shapes World object, and which caption words name it.

The ground truth that binding is measured (``evaluation.word_attention``) and trained
(``training.grounding``) against: an object's tokens are those holding its box centre in their
frames, its words the noun part ("a large red circle") and the motion part ("moves slowly to the
right", "stays still") of its phrase in the canonical caption, as word-tokenizer positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kinetoscope.patches import patch_grid
from kinetoscope.shapes.spec import SceneSpec, object_phrase
from kinetoscope.text.tokenizer import split_words


@dataclass(frozen=True)
class ObjectWords:
    """Token index spans ``[start, stop)`` of one object's phrase in the word tokenizer's ids."""

    noun: tuple[int, int]
    motion: tuple[int, int]


def object_word_spans(caption: str, scene: SceneSpec) -> list[ObjectWords]:
    """The noun and motion spans of each object of ``scene`` in ``caption``'s word ids (``<bos>``
    first, as :class:`~kinetoscope.text.tokenizer.WordTokenizer` makes them); a still object's
    motion words are "stays still".

    Raises ValueError when an object's phrase is not in the caption.
    """
    words = split_words(caption)
    spans, start = [], 0
    for obj in scene.objects:
        phrase = split_words(object_phrase(obj))
        at = next((i for i in range(start, len(words) - len(phrase) + 1) if words[i : i + len(phrase)] == phrase), None)
        if at is None:
            raise ValueError(f"caption {caption!r} does not hold the phrase {' '.join(phrase)!r}")
        verb = at + phrase.index("stays" if obj.direction == "still" else "moves")
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

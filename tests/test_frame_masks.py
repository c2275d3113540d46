"""Given-frame masks drawn for training: every kind, and what a mask may never be."""

from __future__ import annotations

import torch

from kinetoscope.training.frame_masks import KINDS, FrameMaskConfig, sample_frame_masks


def _only(kind: str) -> FrameMaskConfig:
    return FrameMaskConfig(**{k: float(k == kind) for k in KINDS})


def test_each_kind_gives_its_pattern():
    g = torch.Generator().manual_seed(0)
    assert not sample_frame_masks(8, 5, _only("none"), g).any()
    assert sample_frame_masks(8, 5, _only("first"), g).tolist() == [[True, False, False, False, False]] * 8
    assert sample_frame_masks(8, 5, _only("last"), g).tolist() == [[False, False, False, False, True]] * 8
    assert sample_frame_masks(8, 5, _only("first_last"), g).tolist() == [[True, False, False, False, True]] * 8
    prefix = sample_frame_masks(64, 5, _only("prefix"), g)
    lengths = prefix.sum(1)
    assert bool((lengths >= 1).all() and (lengths <= 4).all()) and len(set(lengths.tolist())) == 4
    assert all(row[: int(n)].all() and not row[int(n) :].any() for row, n in zip(prefix, lengths))
    suffix = sample_frame_masks(64, 5, _only("suffix"), g)
    assert all(row[5 - int(row.sum()) :].all() for row in suffix)


def test_a_clip_always_keeps_a_frame_to_denoise_and_images_are_never_given():
    g = torch.Generator().manual_seed(1)
    masks = sample_frame_masks(500, 3, FrameMaskConfig(), g)
    assert not bool(masks.all(1).any())
    assert not sample_frame_masks(50, 1, _only("first"), g).any()


def test_the_mix_follows_its_weights():
    g = torch.Generator().manual_seed(2)
    masks = sample_frame_masks(4000, 5, FrameMaskConfig(), g)
    none_share = float((~masks.any(1)).float().mean())
    assert abs(none_share - 0.55) < 0.05

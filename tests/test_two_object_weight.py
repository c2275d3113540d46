"""`train dit --two-object-weight`: two-object clips drawn K times as often as one-object clips."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.shapes.spec import canonical_caption
from kinetoscope.training.dit import train_dit
from kinetoscope.training.dit_step import clip_weights, draw_batch
from test_binding_loss import ONE, TWO
from test_grounding_loss import _buckets as _scene_buckets
from test_dit_training import _config


def _buckets():
    return _scene_buckets((ONE, TWO, ONE, ONE))  # a quarter of the clips hold two objects


def _two_object_share(config, draws, batches=40):
    g = torch.Generator().manual_seed(5)
    weights = torch.tensor([1.0, 0.0], dtype=torch.float64)
    captions = [c for _ in range(batches) for c in draw_batch(config, _buckets(), weights, g, None, draws).captions]
    return sum(c == canonical_caption(TWO) for c in captions) / len(captions)


def test_two_object_clips_are_drawn_k_times_as_often():
    bucket = _buckets()[0]
    assert clip_weights(bucket, 1.0) is None  # alike: the uniform draw, as before
    weights = clip_weights(bucket, 3.0)
    assert weights.tolist() == [1.0, 3.0, 1.0, 1.0] * 4
    assert clip_weights(LatentBucket(bucket.latents, [{"text": r["text"]} for r in bucket.records]), 3.0) is None

    config = _config(caption_dropout=0.0, two_object_weight=3.0)
    share = _two_object_share(config, [clip_weights(b, 3.0) for b in _buckets()])
    assert share == pytest.approx(0.5, abs=0.08)  # 4 x 3 of 4 x 3 + 12 x 1 clips' weight
    assert _two_object_share(config, None) == pytest.approx(0.25, abs=0.08)


def test_training_takes_the_weight_and_refuses_clips_without_scenes(tmp_path):
    torch.set_num_threads(1)
    assert train_dit(_config(steps=2, two_object_weight=3.0), _buckets(), tmp_path / "run", progress=False).step == 2
    unrecorded = [LatentBucket(b.latents, [{"text": r["text"]} for r in b.records]) for b in _buckets()]  # e.g. a curated cache
    with pytest.raises(ValueError, match="two_object_weight needs clips with scene records"):
        train_dit(_config(steps=1, two_object_weight=3.0), unrecorded, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="two_object_weight must be above 0"):
        _config(two_object_weight=0.0)


def test_the_cli_takes_the_weight_and_refuses_zero(run_cli, tmp_path):
    result = run_cli("train", "dit", "--run-dir", tmp_path / "run", "--two-object-weight", "0")
    assert result.returncode == 2 and "two_object_weight" in result.stderr and "Traceback" not in result.stderr
    assert "--two-object-weight" in run_cli("train", "dit", "--help").stdout

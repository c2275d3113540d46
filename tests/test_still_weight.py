"""`train dit --still-weight`: the loss weighs where an object asked to stay still is."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.shapes.render import render_clip
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec, canonical_caption
from kinetoscope.training.denoiser import Denoiser
from kinetoscope.training.dit import train_dit
from kinetoscope.training.dit_step import diffusion_loss, draw_batch
from kinetoscope.training.grounding import Grounder
from test_binding_loss import ONE, TWO
from test_grounding_loss import _buckets as _scene_buckets
from test_grounding_loss import _record, _vae
from test_dit_training import _config

GROUNDER = Grounder((1, 2, 2), spatial_compression=8, temporal_compression=4)
STILL = SceneSpec("black", (TWO.objects[0], ObjectSpec("blue", "square", "large", "still", "slowly")))


def _buckets():
    return _scene_buckets((STILL, ONE, TWO, STILL))


def test_the_cover_is_the_still_objects_box_in_latent_cells():
    cover = GROUNDER.still_cover(_record(STILL), (8, 5, 8, 8))                                # 16 frames of 64 x 64
    assert cover.shape == (5, 8, 8) and torch.equal(cover[0], cover[4])
    clip = render_clip(STILL, height=64, width=64, num_frames=16, seed=7)
    x0, y0, x1, y1 = clip.boxes[0, 1]
    assert float(cover.sum(dim=(1, 2))[0]) == pytest.approx((x1 - x0) * (y1 - y0) / 64, rel=1e-5)  # box area in cells
    row, col = int((y0 + y1) / 2 // 8), int((x0 + x1) / 2 // 8)
    assert cover[0, row, col] == 1.0  # the box's centre cell is covered whole (a large square spans 22 pixels)
    assert 0 <= cover.min() and cover.max() <= 1.0
    far = [(r, c) for r in range(8) for c in range(8) if abs(r * 8 + 4 - (y0 + y1) / 2) > 16 or abs(c * 8 + 4 - (x0 + x1) / 2) > 16]
    assert all(cover[0, r, c] == 0 for r, c in far)
    # Moving objects, no record, no seed: nothing.
    assert GROUNDER.still_cover(_record(TWO), (8, 5, 8, 8)).abs().sum() == 0
    assert GROUNDER.still_cover(_record(ONE), (8, 1, 8, 8)).abs().sum() == 0
    assert GROUNDER.still_cover({"text": "x", "scene": STILL.to_dict()}, (8, 5, 8, 8)).abs().sum() == 0


def test_the_weight_raises_the_loss_where_a_still_object_is(tmp_path):
    torch.set_num_threads(1)
    config = _config(still_weight=4.0, caption_dropout=0.0)
    vae = _vae()
    grounder = Grounder(config.model.patch_size, vae.spatial_compression, vae.temporal_compression)
    weights = torch.tensor([1.0, 0.0], dtype=torch.float64)
    batch = draw_batch(config, _buckets(), weights, torch.Generator().manual_seed(3), grounder)
    assert batch.still is not None and batch.still.shape == (batch.latents.shape[0], 1, *batch.latents.shape[2:])
    still_clips = [c == canonical_caption(STILL) for c in batch.captions]
    assert any(still_clips)
    assert all((batch.still[i].sum() > 0) == s for i, s in enumerate(still_clips))
    assert draw_batch(config, _buckets(), weights, torch.Generator().manual_seed(3)).still is None  # no grounder, no cover

    torch.manual_seed(0)
    model = Denoiser(config.model, config.text)
    with_weight = float(diffusion_loss(model, batch, config, torch.Generator().manual_seed(1)).detach())
    without = float(diffusion_loss(model, batch, _config(caption_dropout=0.0), torch.Generator().manual_seed(1)).detach())
    assert with_weight != pytest.approx(without, rel=1e-4)  # the still cells now count more in the mean
    no_still = draw_batch(config, [LatentBucket(b.latents, [_record(TWO)] * 16) for b in _buckets()], weights,
                          torch.Generator().manual_seed(3), grounder)  # fmt: skip
    assert no_still.still.sum() == 0
    same = float(diffusion_loss(model, no_still, config, torch.Generator().manual_seed(1)).detach())
    assert same == pytest.approx(float(diffusion_loss(model, no_still, _config(caption_dropout=0.0), torch.Generator().manual_seed(1)).detach()))

    result = train_dit(_config(steps=2, still_weight=4.0), _buckets(), tmp_path / "run", progress=False, vae=vae)
    assert result.step == 2
    with pytest.raises(ValueError, match="still_weight needs the VAE"):
        train_dit(_config(steps=1, still_weight=1.0), _buckets(), tmp_path / "a", progress=False)
    unrecorded = [LatentBucket(b.latents, [{"text": r["text"]} for r in b.records]) for b in _buckets()]  # e.g. a curated cache
    with pytest.raises(ValueError, match="still_weight needs clips with scene records"):
        train_dit(_config(steps=1, still_weight=1.0), unrecorded, tmp_path / "b", progress=False, vae=vae)
    with pytest.raises(ValueError, match="still_weight must be 0 or more"):
        _config(still_weight=-1.0)


def test_the_cli_takes_the_weight_and_refuses_a_negative_one(run_cli, tmp_path):
    result = run_cli("train", "dit", "--run-dir", tmp_path / "run", "--still-weight", "-1")
    assert result.returncode == 2 and "still_weight" in result.stderr and "Traceback" not in result.stderr
    assert "--still-weight" in run_cli("train", "dit", "--help").stdout

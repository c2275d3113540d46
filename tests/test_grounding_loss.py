"""`train dit --grounding-weight`: each object's video tokens read its own caption phrase."""

from __future__ import annotations

import math

import pytest
import torch

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.shapes.object_tokens import object_word_spans
from kinetoscope.shapes.render import render_clip
from kinetoscope.shapes.spec import canonical_caption
from kinetoscope.training.denoiser import Denoiser
from kinetoscope.training.dit import train_dit
from kinetoscope.training.dit_step import diffusion_loss, draw_batch
from kinetoscope.training.distributed import World
from kinetoscope.training.grounding import ClipGrounding, Grounder, grounding_loss
from kinetoscope.transformer.attention_tap import AttentionTap
from test_binding_loss import ONE, SAME_WAY, TWO
from test_dit_training import _config

GROUNDER = Grounder((1, 2, 2), spatial_compression=8, temporal_compression=4)


def _record(scene, seed=7, text=None):
    return {"text": canonical_caption(scene) if text is None else text, "scene": scene.to_dict(), "seed": seed}


def test_a_clips_grounding_holds_each_objects_tokens_and_words():
    grounding = GROUNDER.clip(_record(TWO), canonical_caption(TWO), (8, 5, 8, 8))  # 16 (17) frames of 64 x 64
    clip = render_clip(TWO, height=64, width=64, num_frames=16, seed=7)
    for o, tokens in enumerate(grounding.tokens):
        x, y = (clip.boxes[0, o, :2] + clip.boxes[0, o, 2:]) / 2
        assert tokens[0] == int(y // 16) * 4 + int(x // 16)  # frame 0's token holds the object's centre
        assert all(k * 16 <= token < (k + 1) * 16 for k, token in enumerate(tokens))  # one per latent frame
    assert grounding.spans == tuple(object_word_spans(canonical_caption(TWO), TWO))
    # Still objects have words too ("stays still"); one object, a dropped or paraphrased caption, no seed: none.
    assert GROUNDER.clip(_record(SAME_WAY), canonical_caption(SAME_WAY), (8, 5, 8, 8)) is not None
    assert GROUNDER.clip(_record(ONE), canonical_caption(ONE), (8, 5, 8, 8)) is None
    assert GROUNDER.clip(_record(TWO), "", (8, 5, 8, 8)) is None
    assert GROUNDER.clip(_record(TWO), "a red ball and a blue box", (8, 5, 8, 8)) is None
    assert GROUNDER.clip({"text": canonical_caption(TWO), "scene": TWO.to_dict()}, canonical_caption(TWO), (8, 5, 8, 8)) is None


def _grounding(tokens=((0, 4, 8), (3, 7, 11))):
    return ClipGrounding(tokens, tuple(object_word_spans(canonical_caption(TWO), TWO)))


def test_with_attention_blind_to_the_words_the_loss_is_minus_the_log_of_each_phrase_parts_length_share():
    b, h, n, l, e = 3, 2, 12, 30, 8
    g = torch.Generator().manual_seed(0)
    attention = [(torch.zeros(b, h, n, e), torch.randn(b, h, l, e, generator=g), None) for _ in range(2)]
    grounding = _grounding()
    loss = grounding_loss(attention, [grounding, None, grounding])
    expected = []
    for o in range(2):
        own, other = grounding.spans[o], grounding.spans[1 - o]
        for part in ("noun", "motion"):
            mine = getattr(own, part)[1] - getattr(own, part)[0]
            theirs = getattr(other, part)[1] - getattr(other, part)[0]
            expected.append(-math.log(mine / (mine + theirs)))
    # Every object has 3 tokens, so each (object, part) pair weighs alike.
    assert float(loss) == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    assert grounding_loss(attention, [None, None, None]) is None


def test_minimising_it_makes_a_model_read_each_objects_own_phrase():
    torch.set_num_threads(1)
    config = _config()
    torch.manual_seed(0)
    model = Denoiser(config.model, config.text)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, 3, 4, 4, generator=g)
    t = torch.full((4, 1, 3, 1, 1), 0.9)
    captions, groundings = [canonical_caption(TWO)] * 4, [_grounding()] * 4
    losses = []
    for _ in range(40):
        with AttentionTap(model.transformer) as tap:
            model(x, t, captions)
        loss = grounding_loss(tap.video_to_text(12), groundings)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


def _buckets(scenes=(TWO, ONE, SAME_WAY, TWO)):
    g = torch.Generator().manual_seed(0)
    records = [_record(s, seed=10 + i) for i, s in enumerate(list(scenes) * 4)]
    return [LatentBucket(torch.randn(16, 4, 3, 4, 4, generator=g), records), LatentBucket(torch.randn(16, 4, 1, 4, 4, generator=g), records)]


def _vae():
    from kinetoscope.vae.config import tiny
    from kinetoscope.vae.model import CausalVideoVAE

    return CausalVideoVAE(tiny())


def test_training_adds_the_weighted_term_and_logs_it(tmp_path):
    torch.set_num_threads(1)
    config = _config(grounding_weight=0.5, caption_dropout=0.25)
    vae = _vae()
    grounder = Grounder(config.model.patch_size, vae.spatial_compression, vae.temporal_compression)
    batch = draw_batch(config, _buckets(), torch.tensor([1.0, 0.0], dtype=torch.float64), torch.Generator().manual_seed(3), grounder)
    two = (canonical_caption(TWO), canonical_caption(SAME_WAY))
    assert any(g is not None for g in batch.grounding)
    assert all((g is not None) == (c in two) for c, g in zip(batch.captions, batch.grounding, strict=True))
    assert draw_batch(config, _buckets(), torch.tensor([1.0, 0.0], dtype=torch.float64), torch.Generator().manual_seed(3)).grounding is None

    torch.manual_seed(0)
    model = Denoiser(config.model, config.text)
    parts: dict[str, float] = {}
    with_term = diffusion_loss(model, batch, config, torch.Generator().manual_seed(1), parts=parts)
    without = diffusion_loss(model, batch, _config(caption_dropout=0.25), torch.Generator().manual_seed(1))
    assert parts["grounding"] > 0
    assert float(with_term.detach()) == pytest.approx(float(without.detach()) + 0.5 * parts["grounding"], rel=1e-5)

    result = train_dit(_config(steps=3, grounding_weight=0.5), _buckets(), tmp_path / "run", progress=False, vae=vae)
    assert result.step == 3
    logged = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"lr"' in line]
    assert any('"grounding"' in line for line in logged)


def test_bad_grounding_settings_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="grounding_weight must be 0 or more"):
        _config(grounding_weight=-1.0)
    with pytest.raises(ValueError, match="word text encoder"):
        _config(grounding_weight=1.0, text_encoder="some/folder")
    with pytest.raises(ValueError, match="needs the VAE"):
        train_dit(_config(steps=1, grounding_weight=1.0), _buckets(), tmp_path / "a", progress=False)
    import kinetoscope.training.dit as dit

    monkeypatch.setattr(dit, "current", lambda: World(0, 2))
    with pytest.raises(ValueError, match="grounding_weight trains in one process only"):
        train_dit(_config(steps=1, grounding_weight=1.0), _buckets(), tmp_path / "b", progress=False, vae=_vae())


def test_the_cli_takes_the_weight_and_refuses_a_negative_one(run_cli, tmp_path):
    result = run_cli("train", "dit", "--run-dir", tmp_path / "run", "--grounding-weight", "-1")
    assert result.returncode == 2 and "grounding_weight" in result.stderr and "Traceback" not in result.stderr
    assert "--grounding-weight" in run_cli("train", "dit", "--help").stdout

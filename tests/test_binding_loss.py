"""`train dit --binding-weight`: the caption against its directions exchanged between two objects."""

from __future__ import annotations

import math

import pytest
import torch

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec, canonical_caption
from kinetoscope.training.binding import binding_loss, exchanged_caption
from kinetoscope.training.dit import train_dit
from kinetoscope.training.dit_step import diffusion_loss, draw_batch
from kinetoscope.training.distributed import World
from test_dit_training import _config

TWO = SceneSpec("black", (ObjectSpec("red", "circle", "large", "left", "slowly"), ObjectSpec("blue", "square", "small", "up", "quickly")))
ONE = SceneSpec("gray", (ObjectSpec("green", "triangle", "small", "down", "slowly"),))
SAME_WAY = SceneSpec("white", (ObjectSpec("red", "circle", "large", "left", "slowly"), ObjectSpec("blue", "square", "small", "left", "quickly")))


def test_only_two_objects_moving_different_ways_under_their_own_caption_get_an_exchange():
    exchanged = exchanged_caption(canonical_caption(TWO), TWO)
    by_hand = SceneSpec("black", (ObjectSpec("red", "circle", "large", "up", "slowly"), ObjectSpec("blue", "square", "small", "left", "quickly")))
    assert exchanged == canonical_caption(by_hand) != canonical_caption(TWO)
    assert sorted(exchanged.split()) == sorted(canonical_caption(TWO).split())
    assert exchanged_caption("", TWO) is None  # a dropped caption
    assert exchanged_caption("a red ball and a blue box", TWO) is None  # not the scene's canonical caption
    assert exchanged_caption(canonical_caption(ONE), ONE) is None
    assert exchanged_caption(canonical_caption(SAME_WAY), SAME_WAY) is None
    assert exchanged_caption(canonical_caption(TWO), None) is None


def test_several_attributes_are_exchanged_at_once():
    motion = exchanged_caption(canonical_caption(TWO), TWO, ("direction", "speed"))
    by_hand = SceneSpec("black", (ObjectSpec("red", "circle", "large", "up", "quickly"), ObjectSpec("blue", "square", "small", "left", "slowly")))
    assert motion == canonical_caption(by_hand)
    # Same directions, different speeds: the speeds alone are exchanged.
    same_way = exchanged_caption(canonical_caption(SAME_WAY), SAME_WAY, ("direction", "speed"))
    assert [o.speed for o in SAME_WAY.objects] == ["slowly", "quickly"]
    assert same_way == canonical_caption(SceneSpec("white", (ObjectSpec("red", "circle", "large", "left", "quickly"), ObjectSpec("blue", "square", "small", "left", "slowly"))))
    still = SceneSpec("black", (TWO.objects[0], ObjectSpec("blue", "square", "small", "still", "quickly")))
    assert exchanged_caption(canonical_caption(still), still, ("speed",)) is None  # a still object's caption has no speed
    assert exchanged_caption(canonical_caption(still), still, ("size",)) is not None
    with pytest.raises(ValueError, match="cannot exchange mood"):
        exchanged_caption(canonical_caption(TWO), TWO, ("mood",))


def _inputs(b=4):
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(b, 4, 3, 4, 4, generator=g)
    target = torch.randn(b, 4, 3, 4, 4, generator=g)
    weight = torch.ones(b, 1, 3, 1, 1)
    return x_t, target, weight


def test_a_text_blind_model_pays_tau_log_2_and_low_noise_clips_do_not_count():
    x_t, target, weight = _inputs()
    times = torch.tensor([0.9, 0.2, 0.7, 0.6])
    seen = []

    def blind(x, t, captions):
        seen.append(list(captions))
        return x * 0.5

    v = blind(x_t, times, ["true"] * 4)
    loss = binding_loss(blind, x_t, times, times, v, target, weight, ["x0", "x1", None, "x3"], temperature=0.02, min_t=0.5)
    assert seen[-1] == ["x0", "x3"]  # clip 1 is below min_t, clip 2 has no exchange
    assert float(loss) == pytest.approx(0.02 * math.log(2), rel=1e-6)
    assert binding_loss(blind, x_t, times, times, v, target, weight, [None, "x1", None, None], temperature=0.02, min_t=0.5) is None


def test_the_loss_vanishes_when_the_exchange_predicts_worse_and_grows_when_it_predicts_better():
    x_t, target, weight = _inputs()
    times = torch.full((4,), 0.9)

    def reads_binding(exchange_error):
        def model(x, t, captions):
            out = target.clone()
            for i, text in enumerate(captions):
                if text.startswith("x"):
                    out[i] += exchange_error
            return out

        return model

    exchanged = ["x0", "x1", "x2", "x3"]
    v_true = target + 0.5  # true captions' error 0.25 per element
    good = binding_loss(reads_binding(1.0), x_t, times, times, v_true, target, weight, exchanged, temperature=0.01, min_t=0.5)
    bad = binding_loss(reads_binding(0.1), x_t, times, times, v_true, target, weight, exchanged, temperature=0.01, min_t=0.5)
    assert float(good) < 1e-6  # exchanged error 1.0 against 0.25: ranked right by 75 tau
    assert float(bad) == pytest.approx(0.25 - 0.01, abs=1e-4)  # ranked wrong by 0.24: about the gap itself
    # Its gradient lowers the true caption's error and raises the exchanged one's.
    v = v_true.clone().requires_grad_(True)
    binding_loss(reads_binding(0.1), x_t, times, times, v, target, weight, exchanged, temperature=0.01, min_t=0.5).backward()
    assert (v.grad * (v_true - target)).sum() > 0  # a step against the gradient moves v toward the target


def _two_object_buckets() -> list[LatentBucket]:
    g = torch.Generator().manual_seed(0)
    scenes = [TWO, ONE, SAME_WAY, TWO] * 4
    records = [{"text": canonical_caption(s), "scene": s.to_dict()} for s in scenes]
    return [LatentBucket(torch.randn(16, 4, 3, 4, 4, generator=g), records), LatentBucket(torch.randn(16, 4, 1, 4, 4, generator=g), records)]


def test_training_adds_the_weighted_term_and_logs_it(tmp_path):
    torch.set_num_threads(1)
    config = _config(binding_weight=2.0, binding_min_t=0.0, caption_dropout=0.25)
    buckets = _two_object_buckets()
    batch = draw_batch(config, buckets, torch.tensor([1.0, 0.0], dtype=torch.float64), torch.Generator().manual_seed(3))
    pairs = list(zip(batch.captions, batch.exchanged, strict=True))
    assert any(x is not None for _, x in pairs)
    assert all((x is not None) == (c == canonical_caption(TWO)) for c, x in pairs)  # dropped captions get none
    speeds = draw_batch(_config(binding_weight=2.0, binding_attributes=("speed",)), buckets,
                        torch.tensor([1.0, 0.0], dtype=torch.float64), torch.Generator().manual_seed(3))
    slow_fast = [c for c, x in zip(speeds.captions, speeds.exchanged, strict=True) if x is not None]
    assert slow_fast and all(c in (canonical_caption(TWO), canonical_caption(SAME_WAY)) for c in slow_fast)
    plain = draw_batch(_config(), buckets, torch.tensor([1.0, 0.0], dtype=torch.float64), torch.Generator().manual_seed(3))
    assert plain.exchanged is None

    from kinetoscope.training.denoiser import Denoiser

    torch.manual_seed(0)
    model = Denoiser(config.model, config.text)
    parts: dict[str, float] = {}
    with_term = diffusion_loss(model, batch, config, torch.Generator().manual_seed(1), parts=parts)
    without = diffusion_loss(model, batch, _config(caption_dropout=0.25), torch.Generator().manual_seed(1))
    assert parts["binding"] > 0
    assert float(with_term.detach()) == pytest.approx(float(without.detach()) + 2.0 * parts["binding"], rel=1e-5)

    result = train_dit(_config(steps=3, binding_weight=1.0, binding_min_t=0.0), buckets, tmp_path / "run", progress=False)
    assert result.step == 3
    logged = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"lr"' in line]
    assert len(logged) == 3 and all('"binding"' in line for line in logged)


def test_bad_binding_settings_and_several_processes_are_refused(tmp_path, monkeypatch):
    for bad in ({"binding_weight": -1.0}, {"binding_temperature": 0.0}, {"binding_min_t": 1.0},
                {"binding_attributes": ()}, {"binding_attributes": ("direction", "mood")}):
        with pytest.raises(ValueError, match="binding"):
            _config(**bad)
    import kinetoscope.training.dit as dit

    monkeypatch.setattr(dit, "current", lambda: World(0, 2))
    with pytest.raises(ValueError, match="binding_weight trains in one process only"):
        train_dit(_config(steps=1, binding_weight=1.0), _two_object_buckets(), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())

"""Classifier-free guidance as a wrapper over a denoiser: batching, scale, interval, rescale."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.diffusion import cfg_denoiser, expand_t, sample_euler, sampling_timesteps
from test_diffusion import _noise


def _text_model(calls: list):
    def model(x, t, text, scale_bias=0.0):
        calls.append(x.shape[0])
        return x * text.mean(dim=(1, 2))[:, None] + expand_t(t, x) + scale_bias

    return model


@pytest.mark.parametrize("uncond_len", [5, 2])  # equal shapes batch into one call; others do not
def test_cfg_combines_conditional_and_unconditional_predictions(uncond_len):
    x, t = _noise((3, 4), 11), torch.tensor([0.2, 0.5, 0.9])
    cond = {"text": _noise((3, 5, 8), 12) + 1.0}
    uncond = {"text": torch.zeros(3, uncond_len, 8)}
    calls: list[int] = []
    model = _text_model(calls)
    v_cond, v_uncond = model(x, t, **cond), model(x, t, **uncond)
    calls.clear()
    guided = cfg_denoiser(model, cond, uncond, scale=4.0)(x, t)
    torch.testing.assert_close(guided, v_uncond + 4.0 * (v_cond - v_uncond))
    assert calls == ([6] if uncond_len == 5 else [3, 3])


def test_cfg_with_scale_one_is_the_conditional_denoiser():
    x, t = _noise((3, 4), 13), torch.tensor([0.1, 0.4, 0.8])
    cond, uncond = {"text": _noise((3, 5, 8), 14)}, {"text": torch.zeros(3, 5, 8)}
    model = _text_model([])
    assert torch.equal(cfg_denoiser(model, cond, uncond, scale=1.0)(x, t), model(x, t, **cond))
    guided = sample_euler(cfg_denoiser(model, cond, uncond, 1.0), x, sampling_timesteps(5))
    plain = sample_euler(lambda x, t: model(x, t, **cond), x, sampling_timesteps(5))
    assert torch.equal(guided, plain)


def test_cfg_interval_guides_inside_it_and_calls_once_outside():
    x, cond, uncond = _noise((3, 4), 17), {"text": _noise((3, 5, 8), 18) + 1.0}, {"text": torch.zeros(3, 5, 8)}
    calls: list[int] = []
    model = _text_model(calls)
    guided = cfg_denoiser(model, cond, uncond, scale=4.0, interval=(0.3, 0.8))
    for at, inside in ((0.2, False), (0.3, True), (0.5, True), (0.8, True), (0.9, False)):
        t = torch.full((3,), at)
        calls.clear()
        expected = cfg_denoiser(model, cond, uncond, 4.0)(x, t) if inside else model(x, t, **cond)
        calls.clear()
        torch.testing.assert_close(guided(x, t), expected)
        assert calls == ([6] if inside else [3])
    # Per-token times (given tokens at 0): the step's time is the largest.
    t = torch.tensor([0.0, 0.5, 0.5, 0.5]).expand(3, 4)
    calls.clear()
    guided(x, t)
    assert calls == [6]
    for bad in ((0.5, 0.5), (-0.1, 0.5), (0.2, 1.1), (0.1,)):
        with pytest.raises(ValueError, match="guidance interval"):
            cfg_denoiser(model, cond, uncond, scale=4.0, interval=bad)


@pytest.mark.parametrize("rescale", [0.0, 0.7, 1.0])
def test_guidance_rescale_matches_diffusers_and_pulls_the_spread_back(rescale):
    guider_utils = pytest.importorskip("diffusers.guiders.guider_utils")
    x, t = _noise((3, 40), 15), torch.tensor([0.3, 0.6, 0.9])
    cond, uncond = {"text": _noise((3, 5, 8), 16) + 1.0}, {"text": torch.zeros(3, 5, 8)}
    model = _text_model([])
    v_cond, v_uncond = model(x, t, **cond), model(x, t, **uncond)
    plain = v_uncond + 7.0 * (v_cond - v_uncond)
    guided = cfg_denoiser(model, cond, uncond, scale=7.0, rescale=rescale)(x, t)
    torch.testing.assert_close(guided, guider_utils.rescale_noise_cfg(plain, v_cond, rescale))
    spread = lambda v: v.std(dim=1)  # noqa: E731
    assert torch.all(spread(plain) > 2 * spread(v_cond))  # the guidance overshoots here...
    if rescale == 1.0:  # ...and a full rescale gives each sample the conditional spread back
        torch.testing.assert_close(spread(guided), spread(v_cond))
    with pytest.raises(ValueError, match="rescale must be in"):
        cfg_denoiser(model, cond, uncond, scale=7.0, rescale=1.5)


@pytest.mark.parametrize("scale", [4.0, 1.0])
def test_contrasts_add_their_weighted_difference_from_the_conditional_call_in_one_batch(scale):
    x, t = _noise((3, 4), 31), torch.full((3,), 0.8)
    cond, uncond = {"text": _noise((3, 5, 8), 32) + 1.0}, {"text": torch.zeros(3, 5, 8)}
    first, second = {"text": _noise((3, 5, 8), 33)}, {"text": _noise((3, 5, 8), 34) - 1.0}
    calls: list[int] = []
    model = _text_model(calls)
    v_cond, v_uncond, v_first, v_second = (model(x, t, **kw) for kw in (cond, uncond, first, second))
    calls.clear()
    denoiser = cfg_denoiser(model, cond, uncond, scale, contrasts=[(first, 2.0), (second, 0.5)])
    guided = v_uncond + scale * (v_cond - v_uncond) if scale != 1 else v_cond
    torch.testing.assert_close(denoiser(x, t), guided + 2.0 * (v_cond - v_first) + 0.5 * (v_cond - v_second))
    assert calls == ([12] if scale != 1 else [9])  # every conditioning of the step in one batch
    # A contrast equal to the prompt adds exactly nothing.
    same = cfg_denoiser(model, cond, uncond, scale, contrasts=[(cond, 3.0)])(x, t)
    assert torch.equal(same, cfg_denoiser(model, cond, uncond, scale)(x, t))


def test_contrasts_act_only_inside_their_interval():
    x, cond, uncond = _noise((2, 4), 35), {"text": _noise((2, 5, 8), 36) + 1.0}, {"text": torch.zeros(2, 5, 8)}
    contrast = {"text": _noise((2, 5, 8), 37)}
    calls: list[int] = []
    model = _text_model(calls)
    denoiser = cfg_denoiser(model, cond, uncond, 4.0, interval=(0.3, 1.0), contrasts=[(contrast, 2.0)],
                            contrast_interval=(0.7, 1.0))  # fmt: skip
    plain = cfg_denoiser(model, cond, uncond, 4.0, interval=(0.3, 1.0))
    for at, batch in ((0.9, 6), (0.7, 6), (0.5, 4), (0.1, 2)):
        t = torch.full((2,), at)
        calls.clear()
        out = denoiser(x, t)
        assert calls == [batch]
        if at < 0.7:
            assert torch.equal(out, plain(x, t))
        else:
            torch.testing.assert_close(out, plain(x, t) + 2.0 * (model(x, t, **cond) - model(x, t, **contrast)))
    with pytest.raises(ValueError, match="guidance interval"):
        cfg_denoiser(model, cond, uncond, 4.0, contrasts=[(contrast, 1.0)], contrast_interval=(0.9, 0.2))

"""Positions given for a while: held until t = strength, then noised there and sampled (SDEdit)."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.diffusion import (
    add_noise,
    expand_t,
    sample_euler,
    sample_euler_sde,
    sample_heun,
    sample_with_given,
    sampling_timesteps,
    split_timesteps,
)


def _randn(*shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _gaussian(mu: float = 0.7, sigma: float = 0.5):
    """The exact velocity for data N(mu, sigma^2), acting on each element alone."""

    def denoiser(x, t):
        t = expand_t(t, x)
        var = (1 - t) ** 2 * sigma**2 + t**2
        r = x - (1 - t) * mu
        return t / var * r - (mu + (1 - t) * sigma**2 / var * r)

    return denoiser


def test_split_keeps_the_schedule_below_the_cut():
    ts = sampling_timesteps(10)
    upper, lower = split_timesteps(ts, 0.55)
    assert upper[-1] == lower[0] == pytest.approx(0.55)
    assert torch.equal(upper[:-1], ts[ts > 0.55]) and torch.equal(lower[1:], ts[ts < 0.55])
    with pytest.raises(ValueError, match="t must be"):
        split_timesteps(ts, 0.0)


def test_sdedit_starts_from_the_noised_input_below_strength():
    x0, noise = _randn(2, 3, 4, 2, 2, seed=1), _randn(2, 3, 4, 2, 2, seed=2)
    everything = torch.ones(1, 1, 4, 1, 1, dtype=torch.bool)
    seen = []

    def model(x, t):
        seen.append((x.clone(), t.clone()))
        return _gaussian()(x, t)

    ts = sampling_timesteps(10)
    out = sample_with_given(sample_euler, model, noise, ts, x0, None, everything, strength=0.4)
    x_first, t_first = seen[0]
    torch.testing.assert_close(x_first, add_noise(x0, noise, 0.4))
    assert float(t_first.max()) == pytest.approx(0.4)
    assert len(seen) == int((ts < 0.4).sum())  # one call per step from 0.4 down, none above it
    assert torch.isfinite(out).all()


def test_a_small_strength_keeps_the_input_and_a_full_one_ignores_it():
    x0, noise = _randn(1, 2, 3, 4, 4, seed=3) + 5.0, _randn(1, 2, 3, 4, 4, seed=4)
    everything = torch.ones(1, 1, 3, 1, 1, dtype=torch.bool)
    ts = sampling_timesteps(20)
    near = sample_with_given(sample_heun, _gaussian(), noise, ts, x0, None, everything, strength=0.05)
    full = sample_with_given(sample_heun, _gaussian(), noise, ts, x0, None, everything, strength=1.0)
    assert (near - x0).abs().mean() < 0.5
    torch.testing.assert_close(full, sample_heun(_gaussian(), noise, ts))


def _sde(*args, **kwargs):
    """The stochastic sampler, its noise drawn afresh from one seed at every call."""
    return sample_euler_sde(*args, generator=torch.Generator().manual_seed(3), **kwargs)


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun, _sde])
def test_released_frames_are_held_until_strength_and_given_ones_to_the_end(sampler):
    noise, x_given = _randn(1, 2, 5, 3, 3, seed=5), _randn(1, 2, 5, 3, 3, seed=6)
    given = torch.tensor([True, False, False, False, False]).reshape(1, 1, 5, 1, 1)
    released = torch.tensor([False, False, False, True, False]).reshape(1, 1, 5, 1, 1)
    seen = []

    def model(x, t):
        seen.append((x.clone(), t.clone()))
        return _gaussian()(x, t)

    out = sample_with_given(sampler, model, noise, sampling_timesteps(8), x_given, given, released, strength=0.5)
    assert torch.equal(out[:, :, 0], x_given[:, :, 0])  # given: bit for bit
    assert not torch.equal(out[:, :, 3], x_given[:, :, 3])  # released: sampled after 0.5
    for x, t in seen:
        t_frames = t.reshape(-1)
        assert t_frames[0] == 0
        if t_frames[1] > 0.5:  # still holding frame 3
            assert t_frames[3] == 0 and torch.equal(x[:, :, 3], x_given[:, :, 3])
        elif t_frames[1] < 0.5:  # at 0.5 itself Heun's last correction still holds it
            assert t_frames[3] == t_frames[1]
    assert any(float(t.reshape(-1)[3]) == 0.5 for _, t in seen)  # released at 0.5
    # Strength 1 frees released frames entirely: the same as not giving them at all.
    a = sample_with_given(sampler, _gaussian(), noise, sampling_timesteps(8), x_given, given, released, strength=1.0)
    b = sample_with_given(sampler, _gaussian(), noise, sampling_timesteps(8), x_given, given)
    torch.testing.assert_close(a, b)


def test_pipeline_takes_a_release_mask_and_checks_strength(tiny_pipeline):
    shape = (1, *tiny_pipeline.vae.latent_shape(9, 64, 64))
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    everything = torch.ones(1, 1, shape[2], 1, 1, dtype=torch.bool)
    kwargs = {"num_frames": 9, "output_type": "latent", "given_latents": x0, "release_mask": everything}
    kept = tiny_pipeline("a red ball", strength=0.02, **kwargs).frames
    redrawn = tiny_pipeline("a red ball", strength=1.0, **kwargs).frames
    assert (kept - x0).abs().mean() < 0.1 < (redrawn - x0).abs().mean()
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="strength"):
            tiny_pipeline("a red ball", strength=bad, **kwargs)
    with pytest.raises(ValueError, match="given_latents"):
        tiny_pipeline("a red ball", num_frames=9, release_mask=everything)

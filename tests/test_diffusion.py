"""Rectified-flow math, samplers against an analytic denoiser, and given frames (guidance: test_guidance.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kinetoscope.diffusion import (
    add_noise,
    conditioned_denoiser,
    expand_t,
    flow_loss,
    hold_given,
    motion_weights,
    predict_noise,
    predict_x0,
    sample_euler,
    sample_euler_sde,
    sample_heun,
    sample_timesteps,
    sampling_timesteps,
    shift_for_tokens,
    timestep_shift,
    velocity_target,
)

MU = torch.tensor([1.5, -2.0, 0.5])
SIGMA = torch.tensor([0.5, 2.0, 1.0])


def gaussian_velocity(mu: torch.Tensor, sigma: torch.Tensor):
    """The exact rectified-flow velocity E[noise - x0 | x_t] for data x0 ~ N(mu, sigma^2 I).

    x_t = (1-t) x0 + t n is Gaussian with mean (1-t) mu and variance V = (1-t)^2 sigma^2 + t^2,
    Cov(x0, x_t) = (1-t) sigma^2 and Cov(n, x_t) = t, so both conditional means are linear in x_t.
    """

    def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = expand_t(t, x)
        var = (1 - t) ** 2 * sigma**2 + t**2
        r = x - (1 - t) * mu
        return t / var * r - (mu + (1 - t) * sigma**2 / var * r)

    return denoiser


def _noise(shape=(4096, 3), seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- noising, target, inversion


def test_add_noise_endpoints_and_straight_path():
    x0, noise = _noise((4, 3, 2, 5, 5), 1), _noise((4, 3, 2, 5, 5), 2)
    assert torch.equal(add_noise(x0, noise, torch.zeros(4)), x0)
    assert torch.equal(add_noise(x0, noise, torch.ones(4)), noise)
    t1, t2 = torch.tensor([0.1, 0.3, 0.5, 0.9]), torch.tensor([0.2, 0.7, 0.6, 0.95])
    slope = (add_noise(x0, noise, t2) - add_noise(x0, noise, t1)) / expand_t(t2 - t1, x0)
    torch.testing.assert_close(slope, velocity_target(x0, noise), rtol=1e-4, atol=1e-4)
    mid = add_noise(x0, noise, torch.full((4,), 0.25))
    torch.testing.assert_close(mid, 0.75 * x0 + 0.25 * noise)


def test_add_noise_accepts_per_frame_times():
    x0, noise = _noise((2, 3, 4, 2, 2), 3), _noise((2, 3, 4, 2, 2), 4)
    t = torch.tensor([0.0, 0.5, 0.5, 1.0]).reshape(1, 1, 4, 1, 1).expand(2, 1, 4, 1, 1)
    x_t = add_noise(x0, noise, t)
    assert torch.equal(x_t[:, :, 0], x0[:, :, 0])  # a given frame at t = 0 stays clean
    assert torch.equal(x_t[:, :, 3], noise[:, :, 3])
    with pytest.raises(ValueError, match="does not fit"):
        add_noise(x0, noise, torch.zeros(2, 4))


def test_predict_x0_and_noise_invert_the_path():
    x0, noise = _noise((8, 16), 5), _noise((8, 16), 6)
    t = torch.linspace(0.05, 0.95, 8)
    x_t, v = add_noise(x0, noise, t), velocity_target(x0, noise)
    torch.testing.assert_close(predict_x0(x_t, v, t), x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(predict_noise(x_t, v, t), noise, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- timesteps and shift


@pytest.mark.parametrize(("mean", "shift"), [(0.0, 1.0), (0.5, 1.0), (0.0, 3.0), (-0.5, 2.0)])
def test_logit_normal_samples_have_the_right_median(mean, shift):
    t = sample_timesteps(20000, torch.Generator().manual_seed(0), logit_mean=mean, shift=shift)
    assert t.shape == (20000,) and t.dtype == torch.float32
    assert bool((t > 0).all()) and bool((t < 1).all())
    expected = timestep_shift(torch.sigmoid(torch.tensor(mean)), shift)
    assert abs(t.median().item() - expected.item()) < 0.01
    again = sample_timesteps(20000, torch.Generator().manual_seed(0), logit_mean=mean, shift=shift)
    assert torch.equal(t, again)


@pytest.mark.parametrize("shift", [0.5, 1.0, 3.0, 7.0])
def test_timestep_shift_is_monotone_and_fixes_the_ends(shift):
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    shifted = timestep_shift(t, shift)
    assert shifted[0] == 0 and shifted[-1] == 1
    assert bool((shifted[1:] > shifted[:-1]).all())
    assert math.isclose(timestep_shift(torch.tensor(0.5), shift).item(), shift / (1 + shift), rel_tol=1e-6)
    if shift > 1:
        assert bool((shifted >= t).all())


def test_shift_for_tokens_is_log_linear_and_clamped():
    kw = dict(base_tokens=256, base_shift=1.0, max_tokens=4096, max_shift=4.0)
    assert shift_for_tokens(256, **kw) == pytest.approx(1.0)
    assert shift_for_tokens(4096, **kw) == pytest.approx(4.0)
    assert shift_for_tokens(16, **kw) == pytest.approx(1.0)
    assert shift_for_tokens(100_000, **kw) == pytest.approx(4.0)
    assert shift_for_tokens((256 + 4096) // 2, **kw) == pytest.approx(2.0)  # geometric mean
    counts = [64, 256, 512, 1024, 2048, 4096, 8192]
    shifts = [shift_for_tokens(n) for n in counts]
    assert shifts == sorted(shifts) and shifts[0] >= 1.0


# ---------------------------------------------------------------- loss


def test_flow_loss_averages_over_unmasked_elements_only():
    pred, target = _noise((2, 3, 4, 2, 2), 7), _noise((2, 3, 4, 2, 2), 8)
    torch.testing.assert_close(flow_loss(pred, target), F.mse_loss(pred, target))
    frames = torch.tensor([False, True, True, False]).reshape(1, 1, 4, 1, 1)
    expected = F.mse_loss(pred[:, :, 1:3], target[:, :, 1:3])
    torch.testing.assert_close(flow_loss(pred, target, frames), expected)
    assert flow_loss(pred, target, torch.zeros_like(frames)).item() == 0.0
    tokens = torch.randn(2, 6, 4)
    valid = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)[..., None]
    zeros = torch.zeros_like(tokens)
    torch.testing.assert_close(flow_loss(tokens, zeros, valid), tokens[valid.expand_as(tokens)].square().mean())
    per_sample = flow_loss(tokens, zeros, valid, per_sample=True)
    torch.testing.assert_close(per_sample, torch.stack([tokens[0, :4].square().mean(), tokens[1, :2].square().mean()]))
    torch.testing.assert_close(flow_loss(pred, target, per_sample=True), (pred - target).square().flatten(1).mean(1))


def test_motion_weights_rise_only_where_a_moving_square_passes():
    x0 = torch.zeros(2, 4, 3, 6, 6)
    for k in range(3):
        x0[0, :, k, 1:3, k : k + 2] = 1.0  # sample 0: a square one column to the right per frame
    x0[1, :, :, 2:4, 2:4] = 1.0  # sample 1: the same square, still
    w = motion_weights(x0, 4.0)                                                               # b 1 t h w
    assert w.shape == (2, 1, 3, 6, 6)
    assert bool((w[1] == 1).all()) and bool((w[0, :, :, 3:] == 1).all())
    # Frame 1 changed at the column the square left (0) and the one it entered (2): 1 + 4 * 1.
    assert w[0, 0, 1, 1, 0].item() == 5.0 and w[0, 0, 1, 1, 2].item() == 5.0 and w[0, 0, 1, 1, 1].item() == 1.0
    torch.testing.assert_close(w[0, :, 0], w[0, :, 1])  # frame 0 takes frame 1's change
    assert bool((motion_weights(x0, 0.0) == 1).all()) and bool((motion_weights(x0[:, :, :1], 4.0) == 1).all())
    pred, target = _noise((2, 4, 3, 6, 6), 7), torch.zeros(2, 4, 3, 6, 6)
    assert flow_loss(pred, target, w).item() != pytest.approx(flow_loss(pred, target).item())


# ---------------------------------------------------------------- samplers


def _error(x: torch.Tensor, noise: torch.Tensor) -> float:
    # In 1-D the flow map is monotone, so it must be the Gaussian transport x0 = mu + sigma n.
    return (x - (MU + SIGMA * noise)).abs().max().item()


def test_euler_with_many_steps_transports_noise_to_the_data_distribution():
    noise = _noise()
    x = sample_euler(gaussian_velocity(MU, SIGMA), noise, sampling_timesteps(200))
    assert _error(x, noise) < 0.1
    assert torch.allclose(x.mean(0), MU, atol=0.1)
    assert torch.allclose(x.std(0), SIGMA, rtol=0.05)


@pytest.mark.parametrize(("steps", "shift", "tol"), [(10, 1.0, 0.1), (20, 3.0, 0.15)])
def test_heun_with_few_steps_transports_noise_to_the_data_distribution(steps, shift, tol):
    noise = _noise()
    calls = []
    velocity = gaussian_velocity(MU, SIGMA)

    def counted(x, t):
        calls.append(t)
        return velocity(x, t)

    x = sample_heun(counted, noise, sampling_timesteps(steps, shift))
    assert len(calls) == 2 * steps - 1  # no correction on the step to t = 0
    assert all(bool((t > 0).all()) for t in calls)
    assert _error(x, noise) < tol
    assert torch.allclose(x.mean(0), MU, atol=0.1)
    assert torch.allclose(x.std(0), SIGMA, rtol=0.05)


def test_sde_sampler_at_eta_0_is_euler_and_otherwise_still_lands_on_the_data_distribution():
    noise, ts = _noise(), sampling_timesteps(100)
    velocity = gaussian_velocity(MU, SIGMA)
    torch.testing.assert_close(sample_euler_sde(velocity, noise, ts, eta=0.0), sample_euler(velocity, noise, ts))
    for eta in (0.5, 1.0):
        x = sample_euler_sde(velocity, noise, ts, eta=eta, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(x.mean(0), MU, atol=0.1) and torch.allclose(x.std(0), SIGMA, rtol=0.05), eta
        assert _error(x, noise) > 0.1  # no longer the deterministic transport of this noise
    again = sample_euler_sde(velocity, noise, ts, generator=torch.Generator().manual_seed(1))
    other = sample_euler_sde(velocity, noise, ts, generator=torch.Generator().manual_seed(2))
    assert torch.equal(again, sample_euler_sde(velocity, noise, ts, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(again, other)
    with pytest.raises(ValueError, match="eta"):
        sample_euler_sde(velocity, noise, ts, eta=1.5)


def test_heun_beats_euler_at_ten_steps():
    noise = _noise()
    ts = sampling_timesteps(10)
    euler = _error(sample_euler(gaussian_velocity(MU, SIGMA), noise, ts), noise)
    heun = _error(sample_heun(gaussian_velocity(MU, SIGMA), noise, ts), noise)
    assert heun < euler / 5


def test_sampler_callback_sees_every_step_and_progress_changes_nothing():
    noise = _noise((64, 3))
    ts = sampling_timesteps(6, shift=2.0)
    seen = []
    x = sample_euler(gaussian_velocity(MU, SIGMA), noise, ts, callback=lambda i, t, x: seen.append((i, t.item(), x)))
    assert [i for i, _, _ in seen] == list(range(6))
    assert [t for _, t, _ in seen] == pytest.approx(ts[1:].tolist())
    assert torch.equal(seen[-1][2], x)
    assert torch.equal(sample_euler(gaussian_velocity(MU, SIGMA), noise, ts, progress=True), x)
    with pytest.raises(ValueError, match="decrease"):
        sample_heun(gaussian_velocity(MU, SIGMA), noise, ts.flip(0))


def test_sampling_timesteps_run_from_one_to_zero():
    ts = sampling_timesteps(8, shift=3.0)
    assert ts.shape == (9,) and ts[0] == 1 and ts[-1] == 0
    assert bool((ts[1:] < ts[:-1]).all())


# ---------------------------------------------------------------- diffusers equivalence


def _wobbly_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.sin(3 * x) * expand_t(t, x) + 0.3 * x - 0.2


def test_matches_diffusers_flow_match_euler_scheduler():
    diffusers = pytest.importorskip("diffusers")
    steps, shift = 20, 3.0
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(sigmas=torch.linspace(1, 1 / steps, steps).tolist())
    ours = sampling_timesteps(steps, shift)
    torch.testing.assert_close(scheduler.sigmas, ours, rtol=0, atol=1e-6)

    noise = _noise((2, 4, 3, 4, 4), 9)
    x = noise
    for timestep in scheduler.timesteps:
        v = _wobbly_velocity(x, (timestep / 1000).expand(x.shape[0]))
        x = scheduler.step(v, timestep, x).prev_sample
    torch.testing.assert_close(sample_euler(_wobbly_velocity, noise, ours), x, rtol=0, atol=1e-6)

    x0 = _noise((2, 4, 3, 4, 4), 10)
    timestep = scheduler.timesteps[5:6].expand(2)
    torch.testing.assert_close(
        scheduler.scale_noise(x0, timestep, noise), add_noise(x0, noise, ours[5]), rtol=0, atol=1e-6
    )


def test_shift_for_tokens_matches_diffusers_dynamic_shifting():
    diffusers = pytest.importorskip("diffusers")
    steps, shift = 12, shift_for_tokens(1500)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    scheduler.set_timesteps(sigmas=torch.linspace(1, 1 / steps, steps).tolist(), mu=math.log(shift))
    torch.testing.assert_close(scheduler.sigmas, sampling_timesteps(steps, shift), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- given frames


def _video_gaussian():
    mu = torch.tensor([0.7, -1.0]).reshape(1, 2, 1, 1, 1)
    sigma = torch.tensor([0.5, 1.5]).reshape(1, 2, 1, 1, 1)
    return gaussian_velocity(mu, sigma)


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun])
def test_conditioned_denoiser_holds_given_frames(sampler):
    noise = _noise((2, 2, 4, 3, 3), 15)
    x_given = _noise((2, 2, 4, 3, 3), 16)
    given = torch.tensor([True, False, False, True]).reshape(1, 1, 4, 1, 1)
    velocity = _video_gaussian()
    seen = []

    def model(x, t):
        seen.append((x, t))
        return velocity(x, t)

    ts = sampling_timesteps(8, shift=2.0)
    start = hold_given(noise, x_given, given)
    out = sampler(conditioned_denoiser(model, x_given, given), start, ts)
    given_full = given.expand_as(out)
    assert torch.equal(out[given_full], x_given[given_full])  # bit for bit

    x_seen, t_seen = seen[0]
    assert t_seen.shape == (2, 1, 4, 1, 1)
    assert torch.equal(t_seen[:, :, [0, 3]], torch.zeros(2, 1, 2, 1, 1))
    assert torch.all(t_seen[:, :, [1, 2]] == 1.0)
    assert torch.equal(x_seen[given_full], x_given[given_full])

    # This velocity acts on each element alone, so the free frames follow plain sampling.
    free = ~given_full
    plain = sampler(velocity, noise, ts)
    torch.testing.assert_close(out[free], plain[free])

    from_noise = sampler(conditioned_denoiser(model, x_given, given), noise, ts)
    torch.testing.assert_close(from_noise[given_full], x_given[given_full], rtol=0, atol=1e-5)


def test_low_precision_noise_is_integrated_in_float32_and_returned_in_its_dtype():
    noise = _noise((64, 3), 17)
    seen = []

    def velocity(x, t):
        seen.append((x.dtype, t.dtype))
        return gaussian_velocity(MU, SIGMA)(x, t)

    out = sample_heun(velocity, noise.bfloat16(), sampling_timesteps(10))
    assert out.dtype == torch.bfloat16
    assert set(seen) == {(torch.float32, torch.float32)}
    assert _error(out.float(), noise.bfloat16().float()) < 0.1


def test_diffusion_imports_no_model_and_no_patcher():
    import ast
    from pathlib import Path

    import kinetoscope.diffusion as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.startswith("kinetoscope"):
                    assert name.startswith("kinetoscope.diffusion"), f"{path.name} imports {name}"

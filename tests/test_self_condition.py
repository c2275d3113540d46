"""Self-conditioning: the transformer also reads a clean estimate (the sampler's previous step)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from conftest import make_tiny_pipeline
from dit_models import MODES, inputs, model, one_thread  # noqa: F401  (tests/ is on sys.path; one_thread is autouse)
from test_dit_training import _config, fine_tune_a_trained_model
from kinetoscope.diffusion import cfg_denoiser, predict_x0, sample_euler, sampling_timesteps
from kinetoscope.diffusion.self_condition import SelfCondition
from kinetoscope.training.dit_step import self_condition_estimate, validation_loss
from kinetoscope.transformer.grow import add_self_condition


@pytest.mark.parametrize("mode", MODES)
def test_an_added_estimate_changes_nothing_until_it_is_trained(mode):
    net = model(mode)
    latents, t, text = inputs((2, 4, 3, 4, 4))
    before = net(latents, t, text)
    grown = add_self_condition(net)
    assert grown.config.self_condition and not grown.training
    estimate = torch.randn_like(latents)
    torch.testing.assert_close(grown(latents, t, text), before)
    torch.testing.assert_close(grown(latents, t, text, self_condition=estimate), before)
    grown.train()
    grown(latents, t, text, self_condition=estimate).square().mean().backward()
    assert grown.self_condition_embed.weight.grad.abs().sum() > 0
    with torch.no_grad():
        grown.self_condition_embed.weight.normal_(0, 0.1)
    moved = grown.eval()(latents, t, text, self_condition=estimate)
    assert (moved - before).abs().max() > 1e-3
    # No estimate reads as zeros, the sampler's first step.
    torch.testing.assert_close(grown(latents, t, text), grown(latents, t, text, self_condition=torch.zeros_like(latents)))
    with pytest.raises(ValueError, match="self_condition"):
        net(latents, t, text, self_condition=estimate)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "two-calls"])
def test_each_sampler_step_reads_the_conditional_estimate_of_the_step_before(batched):
    calls, step = [], [-1]

    def velocity(x, t, text, self_condition=None, **extra):
        v = 0.5 * x + text[:, :1, None, None, None] * t.reshape(-1, 1, 1, 1, 1)
        calls.append({"step": step[0], "x": x, "t": t, "v": v, "read": self_condition, "rows": text[:, 0]})
        return v

    carried = SelfCondition()
    cond, uncond = {"text": torch.ones(2, 3)}, {"text": torch.zeros(2, 3)}
    if not batched:  # kwargs that differ in kind make cfg_denoiser call the model twice
        cond["tag"], uncond["tag"] = "cond", "uncond"
    # Guided at t >= 0.5 only: the later steps make the conditional call alone.
    guided = cfg_denoiser(carried.model(velocity), cond, uncond, scale=3.0, interval=(0.5, 1.0))

    def denoiser(x, t):
        step[0] += 1
        return guided(x, t)

    noise = torch.randn(2, 4, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    sample_euler(carried.denoiser(denoiser), noise, sampling_timesteps(4, 1.0))
    assert len({c["step"] for c in calls}) == 4 and any(len(c["x"]) == 2 and c["step"] > 0 for c in calls)
    for c in calls:
        if c["step"] == 0:
            assert c["read"] is None
            continue
        # The conditional rows of the step before (the guided velocity would give another estimate).
        before = next(p for p in calls if p["step"] == c["step"] - 1)
        rows = before["rows"] == 1
        t = before["t"][rows] if before["t"].ndim else before["t"]
        expected = predict_x0(before["x"][rows], before["v"][rows], t)
        assert torch.allclose(c["read"], expected.repeat(len(c["x"]) // 2, 1, 1, 1, 1))


def test_training_passes_the_models_own_estimate_to_the_clips_drawn():
    torch.set_num_threads(1)
    net = add_self_condition(model("joint"))
    latents, t, text = inputs((3, 4, 3, 4, 4))
    t_frames = t[:, None, None, None, None]
    denoiser = lambda x, times, captions: net(x, times.reshape(-1), text[: len(captions)])  # noqa: E731
    estimate = self_condition_estimate(denoiser, latents, t_frames, ["a", "b", "c"], torch.tensor([True, False, True]))
    assert not estimate[1].any()
    with torch.no_grad():
        v = net(latents[[0, 2]], t[[0, 2]], text[:2])
    torch.testing.assert_close(estimate[[0, 2]], predict_x0(latents[[0, 2]], v, t_frames[[0, 2]]))


def test_a_fine_tune_adds_the_estimate_starting_where_the_model_was_and_learns_to_use_it(tmp_path):
    grown = replace(_config().model, self_condition=True)
    trained, held_out, tuned = fine_tune_a_trained_model(tmp_path, grown, steps=12)
    assert tuned.denoiser.transformer.config.self_condition
    # Step 0's validation is the base model's loss: the zero embedding changes no prediction.
    assert tuned.val_losses[0][1] == pytest.approx(validation_loss(trained, held_out, _config(steps=1)), rel=1e-6)
    assert tuned.denoiser.transformer.self_condition_embed.weight.abs().sum() > 0  # it trained


def test_a_self_conditioned_pipeline_feeds_its_estimate_and_stays_deterministic():
    plain = make_tiny_pipeline()
    reference = plain("a red ball moves left", seed=2, output_type="latent").frames
    pipe = make_tiny_pipeline()
    pipe.transformer = add_self_condition(pipe.transformer).eval()
    # Zero embedding: the same video as the model without the estimate.
    torch.testing.assert_close(pipe("a red ball moves left", seed=2, output_type="latent").frames, reference)
    with torch.no_grad():
        pipe.transformer.self_condition_embed.weight.normal_(0, 0.5)
    first = pipe("a red ball moves left", seed=2, output_type="latent").frames
    assert (first - reference).abs().max() > 1e-3
    torch.testing.assert_close(pipe("a red ball moves left", seed=2, output_type="latent").frames, first)


def test_the_command_line_fine_tunes_with_the_estimate_and_generates_from_it(run_cli, tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    result = run_cli("train", "dit", "--preset", "debug", "--init-from", tiny_model_dir, "--self-condition", "--steps", 2,
                     "--run-dir", run, "--workers", 1, "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "final" / "transformer" / "config.json").read_text())["self_condition"] is True
    out = tmp_path / "clip.mp4"
    made = run_cli("generate", "a red ball moves up", "-o", out, "--model", run / "final", "--steps", 2,
                   "--num-frames", 5, "--height", 32, "--width", 32)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert out.stat().st_size > 0


def test_the_command_line_refuses_to_add_the_estimate_under_lora(run_cli, tmp_path, tiny_model_dir):
    result = run_cli("train", "dit", "--init-from", tiny_model_dir, "--self-condition", "--lora-rank", 4,
                     "--run-dir", tmp_path / "run")  # fmt: skip
    assert result.returncode == 2 and "--self-condition" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "run").exists()

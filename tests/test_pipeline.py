"""The text-to-video pipeline on tiny random components: shapes, determinism, save/load, inputs."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.pipelines import KinetoscopePipeline, SamplingDefaults


@pytest.fixture(scope="module")
def pipe(tiny_pipeline) -> KinetoscopePipeline:
    return tiny_pipeline


def test_output_is_uint8_frames_of_the_asked_size(pipe):
    out = pipe(["a red ball", "a blue box"], num_frames=7, height=48, width=64)
    assert len(out.frames) == 2
    assert out.frames[0].shape == (7, 48, 64, 3) and out.frames[0].dtype == np.uint8
    image = pipe("a red ball", num_frames=1).frames[0]
    assert image.shape == (1, 64, 64, 3)


def test_prompts_are_upsampled_to_canonical_captions_unless_told_not_to(pipe):
    out = pipe("a red ball moving left on grey", num_frames=1, seed=3)
    assert out.prompts[0].startswith("A ") and "red circle" in out.prompts[0] and out.prompts[0].endswith("gray background.")
    assert pipe("a red ball", num_frames=1, upsample_prompt=False).prompts == ["a red ball"]


def test_same_seed_same_video_and_text_changes_it(pipe):
    a = pipe("a red ball", num_frames=5, seed=1, upsample_prompt=False).frames[0]
    b = pipe("a red ball", num_frames=5, seed=1, upsample_prompt=False).frames[0]
    c = pipe("a red ball", num_frames=5, seed=2, upsample_prompt=False).frames[0]
    d = pipe("a blue square", num_frames=5, seed=1, upsample_prompt=False).frames[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_guidance_and_negative_prompt_change_the_result(pipe):
    kwargs = {"num_frames": 1, "seed": 0, "upsample_prompt": False, "output_type": "latent"}
    plain = pipe("a red ball", guidance_scale=1.0, **kwargs).frames
    guided = pipe("a red ball", guidance_scale=5.0, **kwargs).frames
    negative = pipe("a red ball", guidance_scale=5.0, negative_prompt="a blue box", **kwargs).frames
    assert (plain - guided).abs().max() > 1e-4 and (guided - negative).abs().max() > 1e-4
    rescaled = pipe("a red ball", guidance_scale=5.0, guidance_rescale=0.7, **kwargs).frames
    assert (rescaled - guided).abs().max() > 1e-4


def test_the_sampling_shift_is_the_argument_else_the_models_else_by_token_count(pipe):
    kwargs = {"num_frames": 1, "seed": 0, "upsample_prompt": False, "output_type": "latent", "num_inference_steps": 4}
    default = pipe("a red ball", **kwargs).frames
    # One 64 x 64 frame is far below 256 tokens: shift_for_tokens gives 1, no shift.
    assert torch.equal(default, pipe("a red ball", shift=1.0, **kwargs).frames)
    shifted = pipe("a red ball", shift=3.0, **kwargs).frames
    assert (shifted - default).abs().max() > 1e-4
    before = pipe.defaults.shift
    try:
        pipe.defaults.shift = 3.0
        assert torch.equal(pipe("a red ball", **kwargs).frames, shifted)
    finally:
        pipe.defaults.shift = before
    with pytest.raises(ValueError, match="shift"):
        type(pipe.defaults)(shift=0.0)


def test_resolved_settings_take_each_chosen_value_else_the_models():
    defaults = SamplingDefaults(guidance_scale=4.0, sampler="heun", shift=None)
    resolved = defaults.resolve(guidance_scale=None, sampler="euler", shift=None, num_inference_steps=12)
    assert resolved == {"guidance_scale": 4.0, "sampler": "euler", "shift": None, "num_inference_steps": 12}
    assert list(resolved) == ["guidance_scale", "sampler", "shift", "num_inference_steps"]  # the order asked


def test_given_latents_come_back_exactly(pipe):
    shape = (1, *pipe.vae.latent_shape(9, 64, 64))
    given = torch.randn(shape)
    mask = torch.zeros(1, 1, shape[2], 1, 1, dtype=torch.bool)
    mask[:, :, 0] = True
    out = pipe("a red ball", num_frames=9, given_latents=given, given_mask=mask, output_type="latent").frames
    assert torch.equal(out[:, :, 0], given[:, :, 0])
    assert (out[:, :, 1:] - given[:, :, 1:]).abs().max() > 0.1


def test_a_size_the_patches_do_not_tile_is_sampled_on_a_larger_grid_and_cropped(pipe):
    # 72 x 40 pixels: 9 x 5 latent rows and columns, which 2 x 2 patches do not tile.
    out = pipe("a red ball", num_frames=5, height=72, width=40, output_type="pt").frames
    assert out.shape == (1, 3, 5, 72, 40)
    latents = pipe("a red ball", num_frames=5, height=72, width=40, output_type="latent").frames
    assert latents.shape[-2:] == (10, 6)
    # Given latents of the asked size are extended to that grid and come back where they were.
    given = torch.randn(1, *pipe.vae.latent_shape(5, 72, 40))
    mask = torch.zeros(1, 1, given.shape[2], 1, 1, dtype=torch.bool)
    mask[:, :, 0] = True
    held = pipe("a red ball", num_frames=5, height=72, width=40, given_latents=given, given_mask=mask, output_type="latent").frames
    assert torch.equal(held[:, :, 0, :9, :5], given[:, :, 0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_frames": 0}, "num_frames"),
        ({"height": 60}, "height"),
        ({"width": 8}, "width"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
        ({"guidance_rescale": 1.5}, "guidance_rescale"),
        ({"shift": -1.0}, "shift"),
        ({"sampler": "ddim"}, "sampler"),
        ({"output_type": "gif"}, "output_type"),
        ({"guidance_interval": (0.5, 0.2)}, "guidance interval"),
        ({"guidance_interval": (0.0, 1.5)}, "guidance interval"),
        ({"contrast_scale": -1.0}, "contrast_scale"),
        ({"contrast_scale": 2.0, "contrast_interval": (0.9, 0.1)}, "guidance interval"),
        ({"contrast_scale": 2.0, "contrast_prompt": ["a", "b"]}, "2 contrast prompts for 1 prompts"),
    ],
)
def test_bad_arguments_name_themselves(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe("a red ball", **kwargs)


def test_a_guidance_interval_guides_only_its_steps(pipe, tmp_path):
    kwargs = {"num_frames": 1, "seed": 0, "upsample_prompt": False, "output_type": "latent", "num_inference_steps": 4,
              "guidance_scale": 5.0}  # fmt: skip
    guided = pipe("a red ball", guidance_interval=(0.0, 1.0), **kwargs).frames
    # Steps start at t = 1, 0.75, 0.5, 0.25: an interval that holds none of them is no guidance at all.
    plain = pipe("a red ball", **{**kwargs, "guidance_scale": 1.0}).frames
    assert torch.equal(pipe("a red ball", guidance_interval=(0.8, 0.9), **kwargs).frames, plain)
    some = pipe("a red ball", guidance_interval=(0.4, 1.0), **kwargs).frames
    assert (some - guided).abs().max() > 1e-4 and (some - plain).abs().max() > 1e-4
    # The default, [0.3, 1], guides the same three steps here.
    assert SamplingDefaults().guidance_interval == (0.3, 1.0)
    assert torch.equal(pipe("a red ball", **kwargs).frames, some)
    # A model's default interval travels with its folder.
    pipe.save_pretrained(tmp_path / "model")
    index = tmp_path / "model" / "model_index.json"
    stored = json.loads(index.read_text())
    assert stored["defaults"]["guidance_interval"] == [0.3, 1.0]
    stored["defaults"]["guidance_interval"] = [0.8, 0.9]
    index.write_text(json.dumps(stored))
    loaded = KinetoscopePipeline.from_pretrained(tmp_path / "model")
    assert loaded.defaults.guidance_interval == (0.8, 0.9)
    assert torch.equal(loaded("a red ball", **kwargs).frames, plain)
    with pytest.raises(ValueError, match="guidance interval"):
        SamplingDefaults(guidance_interval=(1.0, 0.0))


def test_contrastive_guidance_pushes_away_from_the_contrast_at_its_steps_only(pipe):
    kwargs = {"num_frames": 5, "seed": 0, "output_type": "latent", "num_inference_steps": 4, "guidance_scale": 5.0}
    prompt = "A large red circle moves slowly to the right on a black background."
    off = pipe(prompt, contrast_scale=0.0, **kwargs)
    # An image has no motion: never contrasted.
    image = {**kwargs, "num_frames": 1}
    assert torch.equal(pipe(prompt, contrast_scale=3.0, **image).frames, pipe(prompt, contrast_scale=0.0, **image).frames)
    # Upsampled prompts are contrasted with their motion reversed, by default at t >= 0.7.
    auto = pipe(prompt, contrast_scale=3.0, **kwargs).frames
    named = pipe(prompt, contrast_scale=3.0, contrast_prompt=prompt.replace("right", "left"), **kwargs).frames
    assert (auto - off.frames).abs().max() > 1e-4
    torch.testing.assert_close(auto, named)
    # A contrast equal to the prompt adds nothing; so does an interval that holds none of the steps
    # (they start at t = 1, 0.75, 0.5, 0.25).
    torch.testing.assert_close(pipe(prompt, contrast_scale=3.0, contrast_prompt=prompt, **kwargs).frames, off.frames)
    assert torch.equal(pipe(prompt, contrast_scale=3.0, contrast_interval=(0.8, 0.9), **kwargs).frames, off.frames)
    # Nothing moves: no contrast, nothing computed; and no automatic contrast for prompts taken as written.
    still = "A small blue square stays still on a white background."
    assert torch.equal(pipe(still, contrast_scale=3.0, **kwargs).frames, pipe(still, contrast_scale=0.0, **kwargs).frames)
    raw = {**kwargs, "upsample_prompt": False}
    assert torch.equal(pipe("a red ball", contrast_scale=3.0, **raw).frames, pipe("a red ball", **raw).frames)
    # A model's contrast settings travel with its folder (JSON lists back to tuples).
    defaults = SamplingDefaults(**json.loads(json.dumps(asdict(SamplingDefaults(contrast_scale=2.0, contrast_interval=(0.5, 1.0))))))
    assert (defaults.contrast_scale, defaults.contrast_interval) == (2.0, (0.5, 1.0))
    with pytest.raises(ValueError, match="contrast_scale"):
        SamplingDefaults(contrast_scale=-0.5)
    # In a batch, a prompt without a contrast is sampled as without contrastive guidance.
    both = pipe([prompt, still], contrast_scale=3.0, **kwargs).frames
    plain = pipe([prompt, still], contrast_scale=0.0, **kwargs).frames
    torch.testing.assert_close(both[1], plain[1])
    assert (both[0] - plain[0]).abs().max() > 1e-4


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "model")
    loaded = KinetoscopePipeline.from_pretrained(tmp_path / "model")
    assert loaded.defaults == pipe.defaults
    a = pipe("a red ball", num_frames=5, seed=4).frames[0]
    b = loaded("a red ball", num_frames=5, seed=4).frames[0]
    assert np.array_equal(a, b)


def test_the_stochastic_sampler_is_fixed_by_the_seed_and_at_eta_0_is_euler(pipe):
    def latents(**kwargs):
        return pipe("a red ball", num_frames=5, seed=1, output_type="latent", **kwargs).frames

    sde = latents(sampler="sde")
    assert torch.equal(sde, latents(sampler="sde", eta=1.0))  # the model's default eta: SamplingDefaults().eta
    assert not torch.equal(sde, latents(sampler="euler")) and not torch.equal(sde, latents(sampler="sde", eta=0.5))
    torch.testing.assert_close(latents(sampler="sde", eta=0.0), latents(sampler="euler"), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="eta"):
        latents(sampler="sde", eta=1.5)


def test_half_precision_weights_give_the_float32_video_to_rounding(pipe, tiny_model_dir):
    reference = pipe("a red ball moving left", num_frames=5, seed=1).frames[0].astype(np.float64)
    for dtype in (torch.bfloat16, torch.float16):
        half = KinetoscopePipeline.from_pretrained(tiny_model_dir, torch_dtype=dtype)
        modules = (half.vae, half.transformer, half.text_encoder)
        assert half.dtype == dtype and all(p.dtype == dtype for m in modules for p in m.parameters())
        frames = half("a red ball moving left", num_frames=5, seed=1).frames[0]
        assert frames.dtype == np.uint8
        psnr = 10 * np.log10(255**2 / ((frames - reference) ** 2).mean())
        assert psnr > 35, (dtype, psnr)  # measured 52.6 (bfloat16) and 62.2 (float16) dB
    assert pipe.dtype == torch.float32  # the shared fixture untouched


def test_to_moves_every_part_diffusers_style(tiny_model_dir):
    loaded = KinetoscopePipeline.from_pretrained(tiny_model_dir)
    assert loaded.to("cpu", torch.bfloat16) is loaded and loaded.dtype == torch.bfloat16
    assert next(loaded.vae.parameters()).dtype == torch.bfloat16
    assert loaded.to(dtype=torch.float32).dtype == torch.float32 and loaded.device == torch.device("cpu")
    with pytest.raises(ValueError, match="floating-point"):
        loaded.to(torch.int8)


def test_loading_a_folder_that_is_not_a_model_fails_clearly(tmp_path):
    with pytest.raises(KinetoscopeError, match="model_index.json"):
        KinetoscopePipeline.from_pretrained(tmp_path)

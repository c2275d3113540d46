"""The diffusion transformer on the tiny "debug" config.

Config, shapes and zero init, RoPE, text, save/load, checkpointing, overfitting (packed rows,
per-token times and pooled text: test_transformer_conditioning.py).
"""

from __future__ import annotations

import json

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.patches import grid_positions, patchify
from kinetoscope.transformer import PRESETS, DiffusionTransformer, DiTConfig, apply_rope, rope_frequencies

from dit_models import MODES, one_thread  # noqa: E402, F401  (tests/ is on sys.path; one_thread is autouse)
from dit_models import config as _config  # noqa: E402
from dit_models import inputs as _inputs  # noqa: E402
from dit_models import model as _model  # noqa: E402


# ---- config -------------------------------------------------------------------------------


def test_presets_build_valid_configs_and_default_is_shapes():
    assert set(PRESETS) == {"debug", "shapes", "base", "large"}
    assert PRESETS["shapes"]() == DiTConfig()
    widths = [PRESETS[name]().width for name in ("debug", "shapes", "base", "large")]
    assert widths == sorted(widths)


def test_the_default_patch_keeps_16_pixels_per_token_over_a_vae_of_another_compression():
    from kinetoscope.transformer.config import patch_for_vae

    assert patch_for_vae((1, 2, 2), 8) == (1, 2, 2)
    assert patch_for_vae((1, 2, 2), 4) == (1, 4, 4)
    assert patch_for_vae((1, 2, 2), 16) == (1, 1, 1)
    assert patch_for_vae((1, 1, 1), 16) == (1, 1, 1)  # no whole patch covers 16 x 16 pixels: left as it is
    assert patch_for_vae((2, 2, 2), 4) == (2, 4, 4)  # time is not the VAE's spatial business


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("heads", 3, "not divisible by heads"),
        ("width", 0, "width must be a positive int"),
        ("patch_size", (1, 0, 2), "patch_size"),
        ("text_conditioning", "concat", "text_conditioning"),
        ("width", 20, "must be even and at least 6"),
    ],
)
def test_config_rejects_bad_values_by_name(field, value, message):
    overrides = {field: value}
    if field == "width" and value == 20:
        overrides["heads"] = 4  # head_dim 5: odd
    with pytest.raises(ValueError, match=message):
        DiTConfig(**overrides)


def test_default_model_size_is_a_small_cpu_model():
    params = sum(p.numel() for p in DiffusionTransformer().parameters())
    assert 5e6 < params < 8e6


# ---- shapes and init -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(2, 4, 3, 8, 8), (1, 4, 2, 8, 14), (1, 4, 1, 6, 6), (2, 4, 1, 4, 8)])
def test_output_shape_equals_input_shape(mode, shape):
    latents, t, text = _inputs(shape)
    out = _model(mode)(latents, t, text)
    assert out.shape == latents.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("mode", MODES)
def test_output_is_exactly_zero_at_init_and_not_after_perturbing(mode):
    latents, t, text = _inputs((2, 4, 2, 8, 8))
    fresh = _model(mode, perturb=False)
    assert torch.equal(fresh(latents, t, text), torch.zeros_like(latents))
    assert _model(mode)(latents, t, text).abs().mean() > 1e-2


@pytest.mark.parametrize("mode", MODES)
def test_blocks_start_as_the_identity(mode):
    torch.manual_seed(0)
    model = DiffusionTransformer(_config(mode)).eval()
    x, context = torch.randn(2, 6, 64), torch.randn(2, 3, 64)
    freqs = rope_frequencies(torch.zeros(2, 9, 3, dtype=torch.long), 32)
    _, modulation = model.time_embed(torch.rand(2, 6))
    assert torch.equal(modulation, torch.zeros(2, 6, 6, 64))
    for block in model.blocks:
        out, out_text = block(x, context, modulation, freqs if mode == "joint" else freqs[:, :6])
        assert torch.equal(out, x) and torch.equal(out_text, context)


# ---- RoPE ----------------------------------------------------------------------------------


def test_rope_scores_depend_only_on_relative_positions():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 7, 3, 32, generator=g), torch.randn(1, 7, 3, 32, generator=g)
    positions = torch.randint(0, 20, (1, 7, 3), generator=g)
    shifted = positions + torch.tensor([5, 11, 3])

    def scores(pos):
        freqs = rope_frequencies(pos, 32)
        return torch.einsum("bnhe,bmhe->bhnm", apply_rope(q, freqs), apply_rope(k, freqs))

    torch.testing.assert_close(scores(shifted), scores(positions), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(scores(positions), torch.einsum("bnhe,bmhe->bhnm", q, k), atol=1e-2)
    # Each axis matters: moving one token along t, h or w alone changes its scores.
    for axis in range(3):
        moved = positions.clone()
        moved[0, 0, axis] += 1
        assert not torch.allclose(scores(moved)[..., 0, :], scores(positions)[..., 0, :], atol=1e-3)


def test_rope_is_a_rotation_and_identity_at_origin():
    x = torch.randn(2, 5, 4, 64)
    positions = torch.randint(0, 50, (2, 5, 3))
    torch.testing.assert_close(apply_rope(x, rope_frequencies(positions, 64)).norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(apply_rope(x, rope_frequencies(torch.zeros_like(positions), 64)), x)


# ---- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_text_changes_the_output(mode):
    model = _model(mode)
    latents, t, text = _inputs((2, 4, 2, 4, 4))
    with torch.no_grad():
        diff = (model(latents, t, text) - model(latents, t, torch.randn_like(text))).abs().mean()
    assert diff > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_text_matters_after_a_few_steps_from_init(mode):
    torch.manual_seed(0)
    model = DiffusionTransformer(_config(mode))
    latents, t, text = _inputs((2, 4, 2, 4, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        loss = (model(latents, t, text) - latents).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        diff = (model(latents, t, text) - model(latents, t, torch.randn_like(text))).abs().mean()
    assert diff > 1e-4


# ---- save / load, checkpointing ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_save_load_round_trip_is_bit_exact(tmp_path, mode):
    model = _model(mode)
    model.save_pretrained(tmp_path / "dit")
    assert json.loads((tmp_path / "dit" / "config.json").read_text())["text_conditioning"] == mode
    loaded = DiffusionTransformer.from_pretrained(tmp_path / "dit")
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    latents, t, text = _inputs((1, 4, 2, 4, 6))
    with torch.no_grad():
        assert torch.equal(loaded(latents, t, text), model(latents, t, text))


def test_from_pretrained_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(KinetoscopeError, match="config.json"):
        DiffusionTransformer.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("mode", MODES)
def test_gradient_checkpointing_gives_the_same_gradients(mode):
    latents, t, text = _inputs((1, 4, 2, 4, 4))
    grads = []
    for checkpointing in (False, True):
        model = _model(mode)
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(latents, t, text).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.parametrize("mode", MODES)
def test_bf16_model_runs_unchanged_and_tracks_fp32(mode):
    model = _model(mode)
    latents, t, text = _inputs((1, 4, 2, 4, 4))
    mask = torch.tensor([[True, True, True, False, False]])
    with torch.no_grad():
        reference = model(latents, t, text, mask)
        out = model.to(torch.bfloat16)(latents.bfloat16(), t, text.bfloat16(), mask)
    assert out.dtype == torch.bfloat16
    assert (out.float() - reference).abs().mean() < 0.05 * reference.abs().mean()


def test_bad_token_width_is_reported_by_name():
    model = _model()
    with pytest.raises(ValueError, match="tokens must be"):
        model.forward_tokens(
            torch.randn(1, 4, 7), grid_positions((1, 2, 2))[None], torch.rand(1), torch.randn(1, 2, 32)
        )


# ---- training ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_short_overfit_drives_the_loss_down(mode):
    torch.manual_seed(0)
    model = DiffusionTransformer(_config(mode))
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(2, 4, 2, 8, 8, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0.3, 0.8])
    x_t = (1 - t[:, None, None, None, None]) * x0 + t[:, None, None, None, None] * noise
    target = noise - x0
    text = torch.randn(2, 4, 32, generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss = (model(x_t, t, text) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]


def test_patchify_inside_forward_matches_forward_tokens():
    model = _model()
    latents, t, text = _inputs((2, 4, 2, 4, 6))
    tokens = patchify(latents, model.config.patch_size)
    positions = grid_positions((2, 2, 3))[None].expand(2, -1, -1)
    with torch.no_grad():
        via_tokens = model.forward_tokens(tokens, positions, t, text)
        torch.testing.assert_close(patchify(model(latents, t, text), model.config.patch_size), via_tokens)

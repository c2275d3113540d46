"""The diffusion transformer on the tiny "debug" config.

Shapes, zero init, packed rows, per-token times, RoPE, text, save/load, checkpointing, overfitting.
"""

from __future__ import annotations

import json

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.patches import grid_positions, pack, pack_sequences, patchify, per_token, unpack
from kinetoscope.transformer import PRESETS, DiffusionTransformer, DiTConfig, apply_rope, rope_frequencies

MODES = ["cross", "joint"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Run single-threaded: the debug model's ops are too small to gain from threads, and on a
    busy 2-core machine every parallel op waits on its thread barrier (the overfit test took
    40 s with 2 threads against 2.4 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(mode: str = "cross", **overrides) -> DiTConfig:
    return DiTConfig(**{**PRESETS["debug"]().__dict__, "text_conditioning": mode, **overrides})


def _model(mode: str = "cross", seed: int = 0, perturb: bool = True) -> DiffusionTransformer:
    """A debug model; ``perturb`` adds noise to every weight so zero-initialised layers do work."""
    torch.manual_seed(seed)
    model = DiffusionTransformer(_config(mode))
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _inputs(shape: tuple[int, ...], text_len: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    b = shape[0]
    latents = torch.randn(shape, generator=g)
    return latents, torch.rand(b, generator=g), torch.randn(b, text_len, 32, generator=g)


# ---- config -------------------------------------------------------------------------------


def test_presets_build_valid_configs_and_default_is_shapes():
    assert set(PRESETS) == {"debug", "shapes", "base", "large"}
    assert PRESETS["shapes"]() == DiTConfig()
    widths = [PRESETS[name]().width for name in ("debug", "shapes", "base", "large")]
    assert widths == sorted(widths)


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


# ---- packing -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_packed_clips_match_clips_run_alone(mode):
    model = _model(mode)
    g = torch.Generator().manual_seed(3)
    clips = [torch.randn(shape, generator=g) for shape in ((4, 3, 8, 6), (4, 1, 4, 10), (4, 2, 4, 4))]
    texts = [torch.randn(n, 32, generator=g) for n in (4, 2, 6)]
    times = torch.tensor([0.9, 0.2, 0.5])
    patch = model.config.patch_size
    batch = pack(clips, patch, max_tokens=48)  # 36 + 10 fit one row, 8 goes to another
    assert batch.tokens.shape[0] == 2 and (batch.segment_ids == -1).any()
    text = pack_sequences(texts, batch)
    per_token_t = per_token(times, batch)
    with torch.no_grad():
        packed = model.forward_tokens(
            batch.tokens, batch.positions, per_token_t, text.tokens,
            text_mask=text.valid, segment_ids=batch.segment_ids, text_segment_ids=text.segment_ids,
        )
        for clip, clip_text, t, out in zip(clips, texts, times, unpack(packed, batch, patch)):
            alone = model(clip[None], t[None], clip_text[None])[0]
            torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_padded_text_matches_unpadded_text(mode):
    model = _model(mode)
    latents, t, text = _inputs((1, 4, 2, 4, 4), text_len=3)
    padded = torch.cat((text, torch.randn(1, 4, 32)), dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 4])
    with torch.no_grad():
        expected = model(latents, t, text)
        torch.testing.assert_close(model(latents, t, padded, mask), expected, atol=1e-5, rtol=1e-5)


def test_several_clips_per_row_without_text_segments_is_an_error():
    model = _model()
    batch = pack([torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)], model.config.patch_size)
    with pytest.raises(ValueError, match="text_segment_ids"):
        model.forward_tokens(
            batch.tokens, batch.positions, torch.rand(1), torch.randn(1, 3, 32), segment_ids=batch.segment_ids
        )


# ---- per-token timesteps -------------------------------------------------------------------


def test_per_token_time_equal_to_sample_time_changes_nothing():
    model = _model()
    latents, t, text = _inputs((2, 4, 3, 4, 4))
    n = 3 * 2 * 2
    with torch.no_grad():
        torch.testing.assert_close(model(latents, t[:, None].expand(2, n), text), model(latents, t, text))


def test_given_frames_at_time_zero_change_only_their_own_tokens_when_blocks_are_identities():
    # At init the blocks are identities, so tokens do not mix: with a perturbed output head and
    # time embedding, a token's prediction depends on its own time only.
    torch.manual_seed(0)
    model = DiffusionTransformer(_config()).eval()
    with torch.no_grad():
        for module in (model.final, model.time_embed.mlp, model.patch_embed):
            for p in module.parameters():
                p.add_(0.1 * torch.randn_like(p))
    latents, t, text = _inputs((2, 4, 3, 4, 4))
    frame_t = t[:, None, None, None, None].expand(2, 1, 3, 1, 1).clone()
    frame_t[:, :, 0] = 0.0  # frame 0 given (clean), frames 1-2 noisy
    with torch.no_grad():
        diff = (model(latents, frame_t, text) - model(latents, t, text)).abs().amax(dim=(0, 1, 3, 4))
    assert diff[0] > 1e-3
    assert torch.equal(diff[1:], torch.zeros(2))


def test_time_per_frame_per_element_and_per_token_forms_agree():
    model = _model()
    latents, t, text = _inputs((2, 4, 3, 4, 4))
    frame_t = t[:, None, None, None, None].expand(2, 1, 3, 1, 1).clone()
    frame_t[:, :, 0] = 0.0
    token_t = frame_t[:, 0, :, 0, 0].repeat_interleave(4, dim=1)  # 2 x 2 patches per frame
    tokens = patchify(latents, model.config.patch_size)
    positions = grid_positions((3, 2, 2))[None]
    with torch.no_grad():
        per_frame = model(latents, frame_t, text)
        torch.testing.assert_close(model(latents, frame_t.expand(2, 4, 3, 4, 4), text), per_frame)
        torch.testing.assert_close(model(latents, token_t, text), per_frame)
        via_tokens = model.forward_tokens(tokens, positions, token_t[..., None], text)
        torch.testing.assert_close(via_tokens, patchify(per_frame, model.config.patch_size))


def test_per_token_time_reaches_other_tokens_through_attention():
    model = _model()
    latents, t, text = _inputs((1, 4, 3, 4, 4))
    frame_t = torch.full((1, 1, 3, 1, 1), float(t[0]))
    frame_t[:, :, 0] = 0.0
    with torch.no_grad():
        diff = (model(latents, frame_t, text) - model(latents, t, text)).abs().amax(dim=(0, 1, 3, 4))
    assert (diff > 1e-4).all()


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


# ---- pooled text in the time embedding -----------------------------------------------------


def _pooled_model(seed: int = 0) -> DiffusionTransformer:
    torch.manual_seed(seed)
    model = DiffusionTransformer(_config(pooled_text=True))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def test_pooled_text_starts_as_a_no_op():
    torch.manual_seed(0)
    plain = DiffusionTransformer(_config())
    torch.manual_seed(0)
    pooled = DiffusionTransformer(_config(pooled_text=True))
    pooled.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.1 * torch.randn_like(p))
        pooled.load_state_dict(plain.state_dict(), strict=False)  # the pooled MLP's last layer stays 0
        latents, t, text = _inputs((2, 4, 3, 4, 4))
        torch.testing.assert_close(pooled(latents, t, text), plain(latents, t, text))


def test_pooled_text_alone_carries_the_prompt():
    # With every cross-attention output projection at zero, text can only enter through the
    # pooled vector: the plain model ignores it, the pooled one does not.
    latents, t, text = _inputs((2, 4, 2, 4, 4))
    other = torch.randn_like(text)
    diffs = {}
    for name, model in (("plain", _model()), ("pooled", _pooled_model())):
        with torch.no_grad():
            for block in model.blocks:
                block.cross_attn.out.weight.zero_()
                block.cross_attn.out.bias.zero_()
            diffs[name] = (model(latents, t, text) - model(latents, t, other)).abs().max().item()
    assert diffs["plain"] == 0.0 and diffs["pooled"] > 1e-3


def test_pooled_text_packed_clips_match_clips_run_alone_with_given_frames():
    model = _pooled_model()
    g = torch.Generator().manual_seed(3)
    clips = [torch.randn(shape, generator=g) for shape in ((4, 3, 8, 6), (4, 1, 4, 10), (4, 2, 4, 4))]
    texts = [torch.randn(n, 32, generator=g) for n in (4, 2, 6)]
    times = torch.tensor([0.9, 0.2, 0.5])
    patch = model.config.patch_size
    batch = pack(clips, patch, max_tokens=48)
    text = pack_sequences(texts, batch)
    per_token_t = per_token(times, batch).clone()
    per_token_t[0, :12] = 0.0  # the first clip's first frame (4 x 3 patches) is given
    with torch.no_grad():
        packed = model.forward_tokens(
            batch.tokens, batch.positions, per_token_t, text.tokens,
            text_mask=text.valid, segment_ids=batch.segment_ids, text_segment_ids=text.segment_ids,
        )  # fmt: skip
        frame_t = [torch.tensor([0.0, 0.9, 0.9]).reshape(1, 1, 3, 1, 1), times[1:2], times[2:3]]
        for clip, clip_text, t, out in zip(clips, texts, frame_t, unpack(packed, batch, patch)):
            alone = model(clip[None], t, clip_text[None])[0]
            torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_pooled_text_ignores_padding_and_per_token_time_equal_to_sample_time():
    model = _pooled_model()
    latents, t, text = _inputs((2, 4, 3, 4, 4), text_len=3)
    padded = torch.cat((text, torch.randn(2, 4, 32)), dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 4] * 2)
    with torch.no_grad():
        expected = model(latents, t, text)
        torch.testing.assert_close(model(latents, t, padded, mask), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(latents, t[:, None].expand(2, 12), text), expected, atol=1e-5, rtol=1e-5)


def test_pooled_text_gradients_reach_the_pooled_projection():
    model = _pooled_model().train()
    latents, t, text = _inputs((2, 4, 2, 4, 4))
    model(latents, t, text).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.pooled_text_embed.parameters())

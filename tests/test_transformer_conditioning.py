"""The diffusion transformer's conditioning paths on the tiny "debug" config: clips packed into
one row, a timestep per token (given frames at t = 0), and pooled text in the time embedding."""

from __future__ import annotations

import pytest
import torch

from kinetoscope.patches import grid_positions, pack, pack_sequences, patchify, per_token, unpack
from kinetoscope.transformer import DiffusionTransformer

from dit_models import MODES, one_thread  # noqa: E402, F401  (tests/ is on sys.path; one_thread is autouse)
from dit_models import config as _config  # noqa: E402
from dit_models import inputs as _inputs  # noqa: E402
from dit_models import model as _model  # noqa: E402


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
    # Not exactly zero: a time per token takes another matmul path than a time per clip, so the
    # other frames may differ in the last float32 bit (4.8e-7 on some CPUs), far below a real leak.
    assert float(diff[1:].max()) < 1e-5


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

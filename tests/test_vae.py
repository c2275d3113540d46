"""The causal VAE: shapes for any clip, causality, chunked == whole, save/load, a short overfit."""

from __future__ import annotations

import json

import pytest
import torch

from kinetoscope.errors import KinetoscopeError
from kinetoscope.hub import CONFIG_NAME, WEIGHTS_NAME
from kinetoscope.vae import PRESETS, CausalVAEConfig, CausalVideoVAE, DiagonalGaussian
from kinetoscope.vae.causal_conv import CausalCache, CausalConv3d
from kinetoscope.vae.framing import latent_frames, pad_video


def _vae(seed: int = 0) -> CausalVideoVAE:
    """A tiny VAE with every conv randomised: zero-initialised residual branches would hide bugs."""
    torch.manual_seed(seed)
    vae = CausalVideoVAE(PRESETS["tiny"]()).eval()
    for module in vae.modules():
        if isinstance(module, CausalConv3d):
            torch.nn.init.normal_(module.weight, std=module.weight[0].numel() ** -0.5)
            torch.nn.init.normal_(module.bias, std=0.1)
    return vae


def _video(t: int, h: int = 16, w: int = 16, b: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These tensors are tiny: a second thread gains nothing, and on a shared 2-core machine its
    barrier waits stalled single calls for up to a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vae() -> CausalVideoVAE:
    return _vae()


def test_default_config_meets_the_budget() -> None:
    config = CausalVAEConfig()
    assert (config.temporal_compression, config.spatial_compression) == (4, 8)
    assert config.compression_ratio >= 48
    params = sum(p.numel() for p in CausalVideoVAE(config).parameters())
    assert params * 4 < 20e6  # fp32 bytes: the VAE's share of the shipped weights (50 MB in all)


def test_spatial_compression_can_be_set_to_4_or_8_and_a_4x_vae_round_trips_any_size() -> None:
    config = PRESETS["tiny"]().with_spatial_compression(4)
    assert (config.spatial_compression, config.temporal_compression) == (4, 4)
    assert config.with_spatial_compression(8).spatial_compression == 8
    for bad in (2, 6, 32, 0):  # 4 * 2 ** n for n <= 2 transitions: 4, 8 or 16
        with pytest.raises(ValueError, match="spatial compression must be one of"):
            config.with_spatial_compression(bad)
    vae = CausalVideoVAE(config).eval()
    x = torch.rand(1, 3, 6, 20, 28) * 2 - 1  # 20 and 28 are not multiples of 8, only of 4
    with torch.no_grad():
        z = vae.encode(x).mode()
        assert z.shape == (1, config.latent_channels, 3, 5, 7)
        assert vae.decode(z, *x.shape[2:]).shape == x.shape


@pytest.mark.parametrize(
    "bad",
    [
        {"latent_channels": 0},
        {"patch_size": 3},
        {"block_out_channels": (8, 0, 16)},
        {"spatial_downsample": (True,)},
        {"encoder_layers": (1, 1)},
        {"latents_mean": (0.0, 1.0)},
        {"latents_std": (1.0,) * 7 + (0.0,)},
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        CausalVAEConfig(**bad)


@pytest.mark.parametrize(("h", "w"), [(8, 8), (16, 24), (24, 16), (36, 20)])
def test_every_frame_count_and_size_round_trips(vae: CausalVideoVAE, h: int, w: int) -> None:
    with torch.no_grad():
        for t in range(1, 14):
            x = _video(t, h, w)
            z = vae.encode(x).sample(torch.Generator().manual_seed(0))
            assert tuple(z.shape[1:]) == vae.latent_shape(t, h, w)
            assert z.shape[2] == 1 + (t + 2) // 4  # 1 + ceil((t - 1) / 4)
            assert vae.decode(z, t, h, w).shape == x.shape
            assert vae(x).sample.shape == x.shape
    # Uncropped, the decoder gives the whole 1 + 4k frames and multiple-of-8 sizes.
    assert vae.decode(torch.zeros(1, 4, 3, 5, 3)).shape == (1, 3, 9, 40, 24)


def test_padding_repeats_the_last_frame_and_edge() -> None:
    x = _video(6, 10, 17)
    padded = pad_video(x, 4, 8)
    assert padded.shape == (1, 3, 9, 16, 24)
    assert torch.equal(padded[:, :, :6, :10, :17], x)
    assert torch.equal(padded[:, :, 8, :10, :17], x[:, :, 5])
    assert torch.equal(padded[:, :, :6, 15, :17], x[:, :, :, 9])
    assert torch.equal(padded[:, :, :6, :10, 23], x[:, :, :, :, 16])


def test_encoder_is_causal(vae: CausalVideoVAE) -> None:
    x = _video(13)
    with torch.no_grad():
        base = vae.encode(x).mean
        for j in range(13):
            changed = x.clone()
            changed[:, :, j] = -changed[:, :, j]
            mean = vae.encode(changed).mean
            first_affected = latent_frames(j + 1, 4) - 1  # the latent frame that holds frame j
            assert torch.equal(mean[:, :, :first_affected], base[:, :, :first_affected]), j
            assert not _close(mean[:, :, first_affected], base[:, :, first_affected]), j


def test_decoder_is_causal(vae: CausalVideoVAE) -> None:
    z = torch.randn(1, 4, 4, 2, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = vae.decode(z)
        for k in range(4):
            changed = z.clone()
            changed[:, :, k] += 1.0
            frames = vae.decode(changed)
            first_affected = 0 if k == 0 else 4 * k - 3  # latent frame k decodes to frames 4k-3 .. 4k
            assert torch.equal(frames[:, :, :first_affected], base[:, :, :first_affected]), k
            assert not _close(frames[:, :, first_affected], base[:, :, first_affected]), k


def test_an_image_encodes_like_the_first_frame_of_its_video(vae: CausalVideoVAE) -> None:
    x = _video(9, 16, 24)
    with torch.no_grad():
        image = vae.encode(x[:, :, :1]).mean
        video = vae.encode(x).mean
    assert image.shape[2] == 1
    assert _close(image, video[:, :, :1])


@pytest.mark.parametrize("chunk", [4, 8, 12])
def test_chunked_coding_equals_whole_clip(chunk: int) -> None:
    vae = _vae()
    x = _video(23, 16, 24)  # 23 frames: padded to 25, so the last chunk is short
    z = torch.randn(2, 4, 7, 2, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole_mean, whole_logvar = vae.encode(x).mean, vae.encode(x).logvar
        whole_frames = vae.decode(z, 23)
        vae.enable_chunking(chunk)
        posterior = vae.encode(x)
        frames = vae.decode(z, 23)
        streamed = list(vae.iter_decode(z, 23))
    assert _close(posterior.mean, whole_mean) and _close(posterior.logvar, whole_logvar)
    assert frames.shape == whole_frames.shape and _close(frames, whole_frames)
    assert len(streamed) == -(-23 // chunk) and _close(torch.cat(streamed, dim=2), whole_frames)


def test_enable_chunking_rejects_a_chunk_off_the_latent_grid(vae: CausalVideoVAE) -> None:
    for bad in (0, 6, -4):
        with pytest.raises(ValueError, match="frames_per_chunk"):
            vae.enable_chunking(bad)


def test_frame_conv_path_matches_conv3d() -> None:
    """Batch 1 on CPU runs as per-frame conv2d; batch 2 as conv3d: the same function either way."""
    torch.manual_seed(0)
    conv = CausalConv3d(4, 6, 3)
    x = torch.randn(2, 4, 5, 6, 7)
    with torch.no_grad():
        both = conv(x, CausalCache())
        one = torch.cat([conv(x[i : i + 1], CausalCache()) for i in range(2)])
    assert _close(both, one)


def test_bad_shapes_raise_clear_errors(vae: CausalVideoVAE) -> None:
    with pytest.raises(ValueError, match="x: expected"):
        vae.encode(torch.zeros(3, 5, 16, 16))
    with pytest.raises(ValueError, match="x: expected"):
        vae.encode(torch.zeros(1, 4, 5, 16, 16))
    with pytest.raises(ValueError, match="x: expected floating"):
        vae.encode(torch.zeros(1, 3, 5, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="z: expected"):
        vae.decode(torch.zeros(1, 3, 2, 2, 2))
    with pytest.raises(ValueError, match="num_frames=9"):
        vae.decode(torch.zeros(1, 4, 2, 2, 2), num_frames=9)  # 2 latent frames decode to 2..5 frames
    with pytest.raises(ValueError, match="num_frames=1 does not fit these latents: expected 2..5"):
        vae.iter_decode(torch.zeros(1, 4, 2, 2, 2), num_frames=1)  # raises before any iteration
    with pytest.raises(ValueError, match="height=8"):
        vae.decode(torch.zeros(1, 4, 2, 2, 2), height=8)


def test_save_load_round_trip_is_bit_exact(tmp_path) -> None:
    vae = _vae()
    vae.set_latent_stats([0.5, -1.0, 0.0, 2.0], [1.5, 0.5, 1.0, 3.0])
    vae.save_pretrained(tmp_path)
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["_class_name"] == "CausalVideoVAE"
    loaded = CausalVideoVAE.from_pretrained(tmp_path)
    assert loaded.config == vae.config and not loaded.training
    original, restored = vae.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    x = _video(5)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x).mean, vae.encode(x).mean)
        z = torch.randn(1, 4, 2, 2, 2)
        assert torch.equal(loaded.normalize(z), vae.normalize(z))


def test_from_pretrained_reports_bad_folders(tmp_path) -> None:
    with pytest.raises(KinetoscopeError, match="config.json: not found"):
        CausalVideoVAE.from_pretrained(tmp_path / "missing")
    _vae().save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "block_out_channels": [8, 16, 24]}))
    with pytest.raises(KinetoscopeError, match="does not fit"):
        CausalVideoVAE.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "_class_name": "DiffusionTransformer"}))
    with pytest.raises(KinetoscopeError, match="describes a DiffusionTransformer"):
        CausalVideoVAE.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "dropout": 0.1}))
    with pytest.raises(KinetoscopeError, match="unknown fields for CausalVideoVAE: dropout"):
        CausalVideoVAE.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "patch_size": 3}))
    with pytest.raises(KinetoscopeError, match="invalid config"):
        CausalVideoVAE.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    (tmp_path / WEIGHTS_NAME).write_bytes(b"not safetensors")
    with pytest.raises(KinetoscopeError, match=WEIGHTS_NAME):
        CausalVideoVAE.from_pretrained(tmp_path)


def test_normalize_inverts_and_standardises() -> None:
    vae = _vae()
    vae.set_latent_stats([1.0, 2.0, 3.0, 4.0], [2.0, 0.5, 1.0, 4.0])
    z = torch.randn(2, 4, 3, 2, 2) * torch.tensor([2.0, 0.5, 1.0, 4.0]).view(4, 1, 1, 1) + torch.tensor(
        [1.0, 2.0, 3.0, 4.0]
    ).view(4, 1, 1, 1)
    assert _close(vae.denormalize(vae.normalize(z)), z)
    assert _close(vae.normalize(torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1, 1)), torch.zeros(1, 4, 1, 1, 1))
    with pytest.raises(ValueError, match="latents_std"):
        vae.set_latent_stats([0.0] * 4, [1.0, 1.0, 1.0, -1.0])


def test_posterior_sample_mode_and_kl() -> None:
    moments = torch.cat([torch.full((1, 2, 1, 2, 2), 0.5), torch.zeros(1, 2, 1, 2, 2)], dim=1)
    posterior = DiagonalGaussian(moments)
    a = posterior.sample(torch.Generator().manual_seed(7))
    assert torch.equal(a, posterior.sample(torch.Generator().manual_seed(7)))
    assert not torch.equal(a, posterior.mode()) and torch.equal(posterior.mode(), moments[:, :2])
    assert torch.allclose(posterior.kl(), torch.tensor([0.5 * 0.25 * 8]))  # 8 values, each mean^2 / 2


def test_short_overfit_reduces_reconstruction_loss() -> None:
    torch.manual_seed(0)
    vae = CausalVideoVAE(PRESETS["tiny"]())
    # A moving bright square on a dark background: structure in space and time.
    x = torch.full((1, 3, 9, 16, 16), -0.8)
    for t in range(9):
        x[:, :, t, 4:10, t : t + 6] = torch.tensor([0.9, -0.2, 0.4]).view(3, 1, 1)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        out = vae(x, sample_posterior=False)
        loss = (out.sample - x).pow(2).mean()
        opt.zero_grad()
        (loss + 1e-6 * out.posterior.kl().mean()).backward()
        opt.step()
        losses.append(loss.item())
    # Predicting the clip's mean colour alone would leave a loss of x.var() (~0.19, a quarter of
    # the first loss): the bound asks for the moving square itself.
    assert losses[-1] < 0.02 * losses[0] and losses[-1] < 0.1 * x.var().item(), (losses[0], losses[-1])


def test_widening_the_latent_keeps_reconstructions_and_opens_the_new_channels() -> None:
    from kinetoscope.vae.grow import widen_latent

    vae = _vae()
    vae.set_latent_stats([0.1, -0.2, 0.3, 0.0], [1.5, 2.0, 0.5, 1.0])
    wide = widen_latent(vae, 6, torch.Generator().manual_seed(0))
    x = _video(5)
    with torch.no_grad():
        narrow_z, wide_z = vae.encode(x).mode(), wide.encode(x).mode()
        assert wide_z.shape[1] == 6 and _close(wide_z[:, :4], narrow_z)
        assert wide_z[:, 4:].abs().mean() > 1e-4  # the new channels carry something from the start
        assert _close(wide.decode(wide_z), vae.decode(narrow_z))  # ... which the decoder ignores at first
        # Sampled latents too: the new log-variances start small, like a fresh encoder's.
        assert wide.encode(x).std[:, 4:].max() < 0.5
    assert wide.config.latents_mean == (0.1, -0.2, 0.3, 0.0, 0.0, 0.0)
    assert wide.config.latents_std == (1.5, 2.0, 0.5, 1.0, 1.0, 1.0)
    # A reconstruction loss reaches the decoder's new input weights, and through them the encoder's.
    wide.train()
    loss = (wide.decode(wide.encode(x).mode()) - x).pow(2).mean()
    loss.backward()
    assert wide.decoder.conv_in.weight.grad[:, 4:].abs().sum() > 0
    with pytest.raises(ValueError, match="exceed"):
        widen_latent(vae, 4)


def test_refolding_to_4x_keeps_the_blocks_and_treats_flat_2x2_patches_as_before() -> None:
    from einops import repeat

    from kinetoscope.vae.grow import refold_spatial

    vae = _vae()  # 8x: stage transition 0 folds 2 x 2 pixels (and 2 frames)
    four = refold_spatial(vae, 4)
    assert (four.spatial_compression, four.latent_channels) == (4, vae.latent_channels)
    old, new = vae.state_dict(), four.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if ".stages." in k or "conv_out" in k or "conv_in" in k)
    # The encoder's transition on fine features does what it did to the same features in flat 2 x 2 patches.
    x = torch.randn(1, vae.config.block_out_channels[0], 3, 4, 6)
    with torch.no_grad():
        fine = four.encoder.downsamplers[0](x, CausalCache())
        flat = vae.encoder.downsamplers[0](repeat(x, "b c t h w -> b c t (h 2) (w 2)"), CausalCache())
        assert _close(fine, flat)
        # The decoder's gives the mean of the 2 x 2 patch it drew before.
        z = torch.randn(1, vae.config.block_out_channels[1], 2, 3, 3)
        drawn = vae.decoder.upsamplers[-1](z, CausalCache())
        mean = drawn.unflatten(3, (3, 2)).unflatten(5, (3, 2)).mean(dim=(4, 6))
        assert _close(four.decoder.upsamplers[-1](z, CausalCache()), mean)
        # Back to 8x with fewer channels: the folds come back (each sub-position a share), the latent's convs fresh.
        back = refold_spatial(four, 8, latent_channels=2)
        assert back.spatial_compression == 8 and back.encode(_video(5)).mode().shape[1] == 2
    with pytest.raises(ValueError, match="already has"):
        refold_spatial(vae, 8)


def test_deepening_keeps_the_latent_and_reconstructions_and_trains_the_new_blocks() -> None:
    from kinetoscope.vae.grow import deepen

    vae = _vae()
    deep = deepen(vae, encoder_layers=(1, 2, 1), decoder_layers=(2, 1, 3))
    assert deep.config.encoder_layers == (1, 2, 1) and deep.config.decoder_layers == (2, 1, 3)
    assert [len(s) for s in deep.encoder.stages] == [1, 2, 1] and [len(s) for s in deep.decoder.stages] == [3, 1, 2]
    x = _video(5)
    with torch.no_grad():
        z = vae.encode(x).mode()
        assert _close(deep.encode(x).mode(), z)  # the added blocks start as identities
        assert _close(deep.decode(z), vae.decode(z))
    deep.train()
    (deep.decode(deep.encode(x).mode()) - x).pow(2).mean().backward()
    for added in (deep.encoder.stages[1][1], deep.decoder.stages[0][1]):  # one new block in each half
        assert added.conv2.weight.grad is not None and added.conv2.weight.grad.abs().sum() > 0
    assert deepen(vae, decoder_layers=(1, 1, 2)).config.encoder_layers == vae.config.encoder_layers
    with pytest.raises(ValueError, match="at least"):
        deepen(vae, decoder_layers=(1, 1, 0))
    with pytest.raises(ValueError, match="stages"):
        deepen(vae, encoder_layers=(2, 2))

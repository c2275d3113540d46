"""Fine-tuning an exported VAE: one half frozen (decoder-only keeps the latents, encoder-only the
decoder), noise on the latents, more latent channels, a deeper decoder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the training photos")

from kinetoscope.data.vae_mix import heldout_clips  # noqa: E402
from kinetoscope.training.vae import finalize, to_model_input, train_vae  # noqa: E402
from kinetoscope.training.vae_roundtrip import noisy_latents  # noqa: E402
from kinetoscope.vae.config import tiny  # noqa: E402
from kinetoscope.vae.model import CausalVideoVAE  # noqa: E402
from vae_runs import TINY_ARGS, cli, eval_loss, one_thread, small_config  # noqa: E402, F401 (one_thread: autouse)


def test_decoder_only_fine_tuning_keeps_the_latents_and_improves_reconstructions(tmp_path: Path) -> None:
    from kinetoscope.data.latent_cache import vae_fingerprint

    start = train_vae(small_config(6), tmp_path / "base", progress=False).model
    start.set_latent_stats([0.1, -0.2, 0.3, 0.0], [1.5, 2.0, 0.5, 1.0])
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    before = eval_loss(start, clips)

    config = small_config(25, decoder_only=True)
    config.model.latents_mean, config.model.latents_std = start.config.latents_mean, start.config.latents_std
    result = train_vae(config, tmp_path / "decoder", progress=False, init_from=tmp_path / "start")
    tuned = finalize(result.model, config, tmp_path / "tuned")

    for name, value in start.encoder.state_dict().items():
        torch.testing.assert_close(tuned.encoder.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(tuned.decoder.state_dict()[k], v) for k, v in start.decoder.state_dict().items())
    # Statistics are not re-measured (stats_clips is 4 here): the normalised latents are the same,
    # so a latent cache made with the starting VAE is still accepted.
    assert tuned.config.latents_mean == start.config.latents_mean
    assert vae_fingerprint(CausalVideoVAE.from_pretrained(tmp_path / "tuned")) == vae_fingerprint(start)
    assert eval_loss(tuned, clips) < before


def test_encoder_only_fine_tuning_keeps_the_decoder_and_measures_new_statistics(tmp_path: Path) -> None:
    start = train_vae(small_config(6), tmp_path / "base", progress=False).model
    start.set_latent_stats([0.1, -0.2, 0.3, 0.0], [1.5, 2.0, 0.5, 1.0])
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))

    config = small_config(25, encoder_only=True)
    result = train_vae(config, tmp_path / "encoder", progress=False, init_from=tmp_path / "start")
    tuned = finalize(result.model, config, tmp_path / "tuned")
    for name, value in start.decoder.state_dict().items():
        torch.testing.assert_close(tuned.decoder.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(tuned.encoder.state_dict()[k], v) for k, v in start.encoder.state_dict().items())
    assert tuned.config.latents_mean != start.config.latents_mean  # the latents moved: measured again
    assert eval_loss(tuned, clips) < eval_loss(start, clips)
    with pytest.raises(ValueError, match="exclude each other"):
        small_config(2, encoder_only=True, decoder_only=True)
    result = cli("train", "vae", *TINY_ARGS, "--encoder-only", "--run-dir", tmp_path / "bad")
    assert result.returncode == 2 and "--encoder-only" in result.stderr and result.stderr.count("\n") == 1


def test_noisy_latents_scale_with_each_channels_std_and_a_sigma_per_clip() -> None:
    z = torch.zeros(256, 4, 3, 8, 8)
    std = torch.tensor([1.0, 2.0, 0.5, 0.0])
    noisy = noisy_latents(z, 0.4, std, torch.Generator().manual_seed(0))
    per_clip = noisy.std(dim=(2, 3, 4))  # "b l"
    ratios = per_clip[:, :3] / std[:3]
    # One sigma per clip, shared by its channels; sigmas spread over [0, 0.4].
    torch.testing.assert_close(ratios[:, 1], ratios[:, 0], rtol=0.35, atol=0.02)
    assert ratios.max() < 0.48 and ratios[:, 0].min() < 0.05 and ratios[:, 0].max() > 0.35
    assert 0.15 < float(ratios.mean()) < 0.25
    assert torch.equal(noisy[:, 3], z[:, 3])  # a channel of std 0 is left alone
    assert torch.equal(noisy_latents(z, 0.0, std, torch.Generator()), z)


def test_latent_noise_reaches_the_decoder_only_and_keeps_the_run_learning(tmp_path: Path, monkeypatch) -> None:
    start = train_vae(small_config(4), tmp_path / "base", progress=False).model
    start.set_latent_stats([0.0] * 4, [1.0, 2.0, 0.5, 1.0])
    start.save_pretrained(tmp_path / "start")
    seen: dict[float, list[torch.Tensor]] = {}
    decode = CausalVideoVAE.decode

    def recording(self, z, *args, **kwargs):
        seen.setdefault(noise, []).append(z.detach().clone())
        return decode(self, z, *args, **kwargs)

    monkeypatch.setattr(CausalVideoVAE, "decode", recording)
    results = {}
    for noise in (0.0, 0.5):
        config = small_config(25, decoder_only=True, latent_noise=noise)
        config.model.latents_mean, config.model.latents_std = start.config.latents_mean, start.config.latents_std
        results[noise] = train_vae(config, tmp_path / f"noise{noise}", progress=False, init_from=tmp_path / "start")
    # Step 1 of both runs draws the same batch and posterior sample: the difference is the added
    # noise, sigma * std per channel with one sigma for the clip.
    added = seen[0.5][0] - seen[0.0][0]
    per_channel = added.std(dim=(0, 2, 3, 4)) / torch.tensor([1.0, 2.0, 0.5, 1.0])
    assert 0 < float(per_channel.min()) and float(per_channel.max()) < 0.5 * 1.3
    torch.testing.assert_close(per_channel, per_channel.mean().expand(4), rtol=0.3, atol=0)
    assert not torch.equal(seen[0.5][1], seen[0.0][1])
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    assert eval_loss(results[0.5].model, clips) < eval_loss(start, clips)


def test_a_run_can_start_from_a_vae_with_fewer_latent_channels(tmp_path: Path) -> None:
    start = train_vae(small_config(6), tmp_path / "base", progress=False).model
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    # One step at a negligible learning rate: what comes out is the widened start itself.
    wide = small_config(1, lr=1e-9, model=replace(tiny(), latent_channels=6, latents_mean=None, latents_std=None))
    first = train_vae(wide, tmp_path / "wide", progress=False, init_from=tmp_path / "start").model
    assert first.latent_channels == 6
    assert abs(eval_loss(first, clips) - eval_loss(start, clips)) < 1e-4  # it begins where the narrow one was
    result = cli("train", "vae", *TINY_ARGS, "--latent-channels", "6", "--decoder-only", "--init-from",
                  tmp_path / "start", "--run-dir", tmp_path / "bad")  # fmt: skip
    assert result.returncode == 2 and "--latent-channels" in result.stderr and result.stderr.count("\n") == 1


# six CLI runs (~20 s); deepening itself is checked in test_vae.py in the quick run
@pytest.mark.slow
def test_a_decoder_only_run_can_deepen_the_decoder_of_an_exported_vae(tmp_path: Path) -> None:
    from kinetoscope.data.latent_cache import vae_fingerprint

    start = train_vae(small_config(6), tmp_path / "base", progress=False).model
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    result = cli("train", "vae", *TINY_ARGS, "--decoder-only", "--decoder-layers", "2,1,2", "--steps", "1", "--lr", "1e-9",
                  "--stats-clips", "0", "--init-from", tmp_path / "start", "--run-dir", tmp_path / "deep")  # fmt: skip
    assert result.returncode == 0, result.stderr
    deep = CausalVideoVAE.from_pretrained(tmp_path / "deep" / "final")
    assert deep.config.decoder_layers == (2, 1, 2)
    assert abs(eval_loss(deep, clips) - eval_loss(start, clips)) < 1e-4  # it begins where the shallow one was
    assert vae_fingerprint(deep) == vae_fingerprint(start)  # same latents: a latent cache stays valid
    # Fine-tuning the deeper VAE again needs no layer options: the run takes its architecture.
    again = cli("train", "vae", *TINY_ARGS, "--decoder-only", "--steps", "1", "--stats-clips", "0",
                 "--init-from", tmp_path / "deep" / "final", "--run-dir", tmp_path / "again")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert CausalVideoVAE.from_pretrained(tmp_path / "again" / "final").config.decoder_layers == (2, 1, 2)
    for flag, bad in (("--decoder-layers", "2,x,2"), ("--decoder-layers", "0,1,1"), ("--decoder-layers", "2,2"),
                      ("--encoder-layers", "2,2,2")):  # fmt: skip
        result = cli("train", "vae", *TINY_ARGS, "--decoder-only", flag, bad, "--init-from",
                      tmp_path / "start", "--run-dir", tmp_path / f"bad{bad}")  # fmt: skip
        assert result.returncode == 2 and flag[2:9] in result.stderr and result.stderr.count("\n") == 1, (bad, result.stderr)


def test_decoder_only_needs_a_vae_to_start_from(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="init_from"):
        train_vae(small_config(2, decoder_only=True), tmp_path, progress=False)
    result = cli("train", "vae", *TINY_ARGS, "--decoder-only", "--run-dir", tmp_path / "run")
    assert result.returncode == 2 and "--init-from" in result.stderr and result.stderr.count("\n") == 1

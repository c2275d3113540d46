"""VAE training: losses, checkpoints, the loop (loss falls, resume is exact), and the train vae CLI
(`kinetoscope reconstruct`: test_cli_reconstruct.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the training photos")

from kinetoscope.data.vae_mix import ClipBucket, VAEMixConfig, heldout_clips  # noqa: E402
from kinetoscope.training import checkpoint  # noqa: E402
from kinetoscope.training.losses import LossConfig, gradient_l1, psnr_per_clip, ssim_per_frame, vae_loss  # noqa: E402
from kinetoscope.training.vae import (  # noqa: E402
    VAETrainConfig,
    finalize,
    learning_rate,
    noisy_latents,
    to_model_input,
    train_vae,
)
from kinetoscope.vae.config import tiny  # noqa: E402
from kinetoscope.vae.model import CausalVideoVAE  # noqa: E402

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"
# Small clips keep a tiny-model step near 0.1 s on a CPU; one image bucket exercises the 1-frame path.
SMALL_BUCKETS = (ClipBucket(5, 32, 32, 3.0), ClipBucket(1, 32, 32, 1.0))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from a second thread, and on a shared CPU two OpenMP threads
    spinning against other processes made these tests 5-10x slower (measured: 7 s vs 53 s)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _config(steps: int, **overrides) -> VAETrainConfig:
    mix = VAEMixConfig(buckets=SMALL_BUCKETS, batch_size=1, seed=0, shapes_weight=1.0, photos_weight=1.0, lavfi_weight=0.0)
    settings = dict(model=tiny(), mix=mix, steps=steps, lr=3e-3, warmup_steps=3, checkpoint_every=4, stats_clips=4)
    return VAETrainConfig(**(settings | overrides), device="cpu")


_ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # as _one_thread, for the CLI's processes


def _cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KINETOSCOPE), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=_ONE_THREAD_ENV
    )


# ---- losses -------------------------------------------------------------------------------


def test_metrics_on_known_cases() -> None:
    x = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    assert torch.allclose(ssim_per_frame(x, x), torch.ones(2, 5), atol=1e-5)
    assert ssim_per_frame(x, -x).max() < 0.5
    # An error of 2/255 everywhere on the [0, 255] scale is 20 log10(255 / 2) dB.
    shifted = x + 4 / 255
    assert torch.allclose(psnr_per_clip(shifted, x), torch.full((2,), 20 * np.log10(255 / 2)), atol=1e-3)
    assert gradient_l1(shifted, x) < 1e-6  # a constant offset has the same gradients
    assert gradient_l1(x.flip(-1), x) > 0.1


def test_loss_is_zero_for_a_perfect_reconstruction_and_grows_with_error() -> None:
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    config = LossConfig()
    perfect, parts = vae_loss(x, x, torch.tensor(0.0), config)
    assert abs(float(perfect)) < 1e-5 and set(parts) == {"l1", "ssim", "grad", "kl"}
    slightly, _ = vae_loss(x + 0.05 * torch.randn_like(x), x, torch.tensor(0.0), config)
    badly, _ = vae_loss(x + 0.3 * torch.randn_like(x), x, torch.tensor(0.0), config)
    assert 0 < float(slightly) < float(badly)
    with pytest.raises(ValueError, match="kl_weight"):
        LossConfig(kl_weight=-1)


def test_edge_term_weighs_the_rim_of_a_shape_and_ignores_flat_colour() -> None:
    from kinetoscope.training.losses import edge_band, edge_l1

    target = -torch.ones(1, 3, 2, 32, 32)
    target[:, :, :, 10:20, 12:22] = 1.0  # a 10 x 10 white square on black
    band = edge_band(target)[0, 0, 0]
    assert band[10, 12] and band[8, 16] and band[11, 16]  # its corner, 2 px outside, 1 px inside its top edge
    assert not band[15, 17] and not band[2, 2] and not band[16, 28]  # its centre and the far background
    assert not edge_band(torch.zeros(1, 3, 1, 16, 16)).any() and edge_l1(torch.ones(1, 3, 1, 16, 16), torch.zeros(1, 3, 1, 16, 16)) == 0
    # Shrinking the square by one pixel all round changes 36 pixels: 23% of the band's, 3.5% of the
    # frame's, so the band's mean L1 weighs that shape error over 6 times as much as a plain mean.
    shrunk = -torch.ones_like(target)
    shrunk[:, :, :, 11:19, 13:21] = 1.0
    assert edge_l1(shrunk, target) > 5 * (shrunk - target).abs().mean()
    with_edge = LossConfig(edge_weight=1.0)
    total, parts = vae_loss(shrunk, target, torch.tensor(0.0), with_edge)
    plain, _ = vae_loss(shrunk, target, torch.tensor(0.0), LossConfig())
    assert "edge" in parts and float(total) == pytest.approx(float(plain) + parts["edge"], rel=1e-5)


# ---- checkpoints --------------------------------------------------------------------------


def test_checkpoints_are_atomic_and_only_the_last_k_are_kept(tmp_path: Path) -> None:
    for step in (2, 4, 6, 8):
        checkpoint.save_checkpoint({"step": step, "w": torch.full((3,), float(step))}, tmp_path, step, keep_last=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [6, 8]
    assert checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path))["step"] == 8
    # A save that fails half-way (an unpicklable value) leaves no file behind and the old ones intact.
    with pytest.raises(Exception):
        checkpoint.save_checkpoint({"step": 10, "bad": lambda: None}, tmp_path, 10, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000006.pt", "step_00000008.pt"]
    assert checkpoint.latest_checkpoint(tmp_path / "missing") is None


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    config = _config(100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    rates = [learning_rate(config, s) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert learning_rate(config, 100) == pytest.approx(1e-4)


# ---- the loop -----------------------------------------------------------------------------


def _eval_loss(model: CausalVideoVAE, clips: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        out = model(clips, sample_posterior=False)
        loss, _ = vae_loss(out.sample, clips, torch.tensor(0.0), LossConfig())
    model.train()
    return float(loss)


def test_a_tiny_vae_learns_in_30_steps(tmp_path: Path) -> None:
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    torch.manual_seed(0)
    before = _eval_loss(CausalVideoVAE(tiny()), clips)  # train_vae initialises with the same seed
    result = train_vae(_config(30), tmp_path, progress=False)
    after = _eval_loss(result.model, clips)
    assert result.step == 30 and len(result.losses) == 30 and np.isfinite(result.losses).all()
    assert after < 0.75 * before, (before, after)
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:5])


def test_a_run_killed_and_resumed_ends_where_an_uninterrupted_run_does(tmp_path: Path) -> None:
    whole = train_vae(_config(10), tmp_path / "whole", progress=False)

    # Stop at step 6, then throw away the step-6 checkpoint: as if the process died at step 6
    # with its last save at step 4, so the resumed run redoes steps 5 and 6.
    first = train_vae(_config(10), tmp_path / "split", stop_at=6, progress=False)
    assert first.step == 6
    checkpoint.checkpoint_path(tmp_path / "split", 6).unlink()
    second = train_vae(_config(10), tmp_path / "split", progress=False)

    assert second.step == 10 and np.isfinite(second.losses).all()
    assert second.losses == whole.losses[4:]  # the same batches, the same noise, the same losses
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    steps = [int(m) for m in re.findall(r'"step": (\d+)', (tmp_path / "split" / "log.jsonl").read_text())]
    assert steps == list(range(1, 11))  # the redone steps are logged once


def test_resuming_with_another_model_config_is_refused(tmp_path: Path) -> None:
    train_vae(_config(2, checkpoint_every=1), tmp_path, progress=False)
    other = _config(4)
    other.model.latent_channels = 8
    with pytest.raises(ValueError, match="another model config"):
        train_vae(other, tmp_path, progress=False)


def test_decoder_only_fine_tuning_keeps_the_latents_and_improves_reconstructions(tmp_path: Path) -> None:
    from kinetoscope.data.latent_cache import vae_fingerprint

    start = train_vae(_config(6), tmp_path / "base", progress=False).model
    start.set_latent_stats([0.1, -0.2, 0.3, 0.0], [1.5, 2.0, 0.5, 1.0])
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    before = _eval_loss(start, clips)

    config = _config(25, decoder_only=True)
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
    assert _eval_loss(tuned, clips) < before


def test_encoder_only_fine_tuning_keeps_the_decoder_and_measures_new_statistics(tmp_path: Path) -> None:
    start = train_vae(_config(6), tmp_path / "base", progress=False).model
    start.set_latent_stats([0.1, -0.2, 0.3, 0.0], [1.5, 2.0, 0.5, 1.0])
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))

    config = _config(25, encoder_only=True)
    result = train_vae(config, tmp_path / "encoder", progress=False, init_from=tmp_path / "start")
    tuned = finalize(result.model, config, tmp_path / "tuned")
    for name, value in start.decoder.state_dict().items():
        torch.testing.assert_close(tuned.decoder.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(tuned.encoder.state_dict()[k], v) for k, v in start.encoder.state_dict().items())
    assert tuned.config.latents_mean != start.config.latents_mean  # the latents moved: measured again
    assert _eval_loss(tuned, clips) < _eval_loss(start, clips)
    with pytest.raises(ValueError, match="exclude each other"):
        _config(2, encoder_only=True, decoder_only=True)
    result = _cli("train", "vae", *_TINY_ARGS, "--encoder-only", "--run-dir", tmp_path / "bad")
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
    start = train_vae(_config(4), tmp_path / "base", progress=False).model
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
        config = _config(25, decoder_only=True, latent_noise=noise)
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
    assert _eval_loss(results[0.5].model, clips) < _eval_loss(start, clips)


def test_a_run_can_start_from_a_vae_with_fewer_latent_channels(tmp_path: Path) -> None:
    start = train_vae(_config(6), tmp_path / "base", progress=False).model
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    # One step at a negligible learning rate: what comes out is the widened start itself.
    wide = _config(1, lr=1e-9, model=replace(tiny(), latent_channels=6, latents_mean=None, latents_std=None))
    first = train_vae(wide, tmp_path / "wide", progress=False, init_from=tmp_path / "start").model
    assert first.latent_channels == 6
    assert abs(_eval_loss(first, clips) - _eval_loss(start, clips)) < 1e-4  # it begins where the narrow one was
    result = _cli("train", "vae", *_TINY_ARGS, "--latent-channels", "6", "--decoder-only", "--init-from",
                  tmp_path / "start", "--run-dir", tmp_path / "bad")  # fmt: skip
    assert result.returncode == 2 and "--latent-channels" in result.stderr and result.stderr.count("\n") == 1


def test_a_decoder_only_run_can_deepen_the_decoder_of_an_exported_vae(tmp_path: Path) -> None:
    from kinetoscope.data.latent_cache import vae_fingerprint

    start = train_vae(_config(6), tmp_path / "base", progress=False).model
    start.save_pretrained(tmp_path / "start")
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    result = _cli("train", "vae", *_TINY_ARGS, "--decoder-only", "--decoder-layers", "2,1,2", "--steps", "1", "--lr", "1e-9",
                  "--stats-clips", "0", "--init-from", tmp_path / "start", "--run-dir", tmp_path / "deep")  # fmt: skip
    assert result.returncode == 0, result.stderr
    deep = CausalVideoVAE.from_pretrained(tmp_path / "deep" / "final")
    assert deep.config.decoder_layers == (2, 1, 2)
    assert abs(_eval_loss(deep, clips) - _eval_loss(start, clips)) < 1e-4  # it begins where the shallow one was
    assert vae_fingerprint(deep) == vae_fingerprint(start)  # same latents: a latent cache stays valid
    # Fine-tuning the deeper VAE again needs no layer options: the run takes its architecture.
    again = _cli("train", "vae", *_TINY_ARGS, "--decoder-only", "--steps", "1", "--stats-clips", "0",
                 "--init-from", tmp_path / "deep" / "final", "--run-dir", tmp_path / "again")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert CausalVideoVAE.from_pretrained(tmp_path / "again" / "final").config.decoder_layers == (2, 1, 2)
    for flag, bad in (("--decoder-layers", "2,x,2"), ("--decoder-layers", "0,1,1"), ("--decoder-layers", "2,2"),
                      ("--encoder-layers", "2,2,2")):  # fmt: skip
        result = _cli("train", "vae", *_TINY_ARGS, "--decoder-only", flag, bad, "--init-from",
                      tmp_path / "start", "--run-dir", tmp_path / f"bad{bad}")  # fmt: skip
        assert result.returncode == 2 and flag[2:9] in result.stderr and result.stderr.count("\n") == 1, (bad, result.stderr)


def test_decoder_only_needs_a_vae_to_start_from(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="init_from"):
        train_vae(_config(2, decoder_only=True), tmp_path, progress=False)
    result = _cli("train", "vae", *_TINY_ARGS, "--decoder-only", "--run-dir", tmp_path / "run")
    assert result.returncode == 2 and "--init-from" in result.stderr and result.stderr.count("\n") == 1


# ---- train vae CLI ------------------------------------------------------------------------

_TINY_ARGS = ("--preset", "tiny", "--threads", "1", "--batch-size", "1", "--clip-size", "5x32x32", "--clip-size", "1x32x32", "--no-progress")


def test_train_vae_cli_exports_a_loadable_model_with_latent_statistics(tmp_path: Path) -> None:
    export = tmp_path / "export"
    result = _cli("train", "vae", *_TINY_ARGS, "--steps", "3", "--stats-clips", "4", "--run-dir", tmp_path / "run", "--export", export)
    assert result.returncode == 0, result.stderr
    assert "trained to step 3 of 3" in result.stdout and f"exported to {export}" in result.stdout
    model = CausalVideoVAE.from_pretrained(export)
    assert model.config.block_out_channels == tiny().block_out_channels
    assert model.config.latents_std != (1.0,) * 4 and all(s > 0 for s in model.config.latents_std)
    assert checkpoint.latest_checkpoint(tmp_path / "run").name == "step_00000003.pt"

    # Run again with more steps: it resumes from step 3 rather than starting over.
    again = _cli("train", "vae", *_TINY_ARGS, "--steps", "4", "--stats-clips", "0", "--run-dir", tmp_path / "run", "--export", export)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stdout and "trained to step 4 of 4" in again.stdout

    # The same folder with another model: refused in one line, not resumed into a mismatched model.
    other = _cli("train", "vae", "--preset", "default", "--steps", "5", "--run-dir", tmp_path / "run")
    assert other.returncode == 2 and "another model config" in other.stderr and other.stderr.count("\n") == 1


def test_train_vae_cli_can_train_a_vae_at_4x_spatial_compression(tmp_path: Path) -> None:
    export = tmp_path / "export"
    args = ("--spatial-compression", "4", "--steps", "2", "--stats-clips", "2", "--run-dir", tmp_path / "run", "--export", export)
    result = _cli("train", "vae", *_TINY_ARGS, *args)
    assert result.returncode == 0, result.stderr
    model = CausalVideoVAE.from_pretrained(export)
    assert model.spatial_compression == 4 and model.config.compression_ratio == 4 * 4 * 4 * 3 / 4
    with torch.no_grad():
        assert model.encode(torch.zeros(1, 3, 5, 32, 32)).mode().shape[-2:] == (8, 8)

    # A fine-tune from it at another compression refolds it (vae/grow.refold_spatial) and trains on.
    back = tmp_path / "back"
    again = _cli("train", "vae", *_TINY_ARGS, "--init-from", export, "--spatial-compression", "8", "--steps", "1",
                 "--stats-clips", "2", "--run-dir", tmp_path / "ft", "--export", back)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert CausalVideoVAE.from_pretrained(back).spatial_compression == 8
    # ... which changes the latent, so not with a half of the VAE frozen: one line, exit 2.
    frozen = _cli("train", "vae", *_TINY_ARGS, "--init-from", export, "--spatial-compression", "8", "--decoder-only",
                  "--run-dir", tmp_path / "frozen")  # fmt: skip
    assert frozen.returncode == 2 and "--spatial-compression" in frozen.stderr and frozen.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--steps", "0"), "steps must be at least 1"),
        (("--clip-size", "16x64x64"), "1 + 4k"),
        (("--resume",), "--resume: "),
        (("--latent-noise", "-0.5"), "latent_noise must be in [0, 10]"),
    ],
)
def test_train_vae_cli_rejects_bad_arguments_in_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = _cli("train", "vae", "--preset", "tiny", "--run-dir", tmp_path / "run", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_saves_a_checkpoint_and_the_rerun_finishes(tmp_path: Path) -> None:
    # Far more steps than the signal can take to arrive, so the run cannot end on its own first.
    args = ("train", "vae", *_TINY_ARGS, "--checkpoint-every", "1000", "--stats-clips", "0")
    run = tmp_path / "run"
    process = subprocess.Popen(
        [str(KINETOSCOPE), *args, "--steps", "100000", "--run-dir", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_ONE_THREAD_ENV,
        # As a terminal's Ctrl-C finds it: a suite started in the background of a script inherits
        # SIGINT ignored, and the command rightly keeps an ignored signal ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    log = run / "log.jsonl"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and (not log.exists() or log.read_text().count("\n") < 3):
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()  # a failing run must not outlive the test (a no-op once it has exited)
        process.wait()
    assert process.returncode == 130 and "interrupted" in stderr
    saved = checkpoint.latest_checkpoint(run)
    step = checkpoint.load_checkpoint(saved)["step"] if saved is not None else 0
    assert 3 <= step < 100000
    end = step + 3  # the rerun continues from the checkpoint, on a schedule cut short
    rerun = _cli(*args, "--steps", end, "--run-dir", run)
    assert rerun.returncode == 0 and f"trained to step {end} of {end}" in rerun.stdout

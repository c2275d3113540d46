"""VAE training: losses, checkpoints, the loop (loss falls, resume is exact), and the train vae CLI
(fine-tuning an exported VAE: test_vae_fine_tuning.py; `kinetoscope reconstruct`: test_cli_reconstruct.py)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the training photos")

from kinetoscope.data.vae_mix import heldout_clips  # noqa: E402
from kinetoscope.training import checkpoint  # noqa: E402
from kinetoscope.training.losses import LossConfig, gradient_l1, psnr_per_clip, ssim_per_frame, vae_loss  # noqa: E402
from kinetoscope.training.vae import learning_rate, to_model_input, train_vae  # noqa: E402
from kinetoscope.training.vae_roundtrip import RoundTrip, halve  # noqa: E402
from kinetoscope.vae.config import tiny  # noqa: E402
from kinetoscope.vae.model import CausalVideoVAE  # noqa: E402
from vae_runs import KINETOSCOPE, ONE_THREAD_ENV, TINY_ARGS, cli, eval_loss, one_thread, small_config  # noqa: E402, F401

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
    config = small_config(100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    rates = [learning_rate(config, s) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert learning_rate(config, 100) == pytest.approx(1e-4)


# ---- the loop -----------------------------------------------------------------------------


def test_a_tiny_vae_learns_in_30_steps(tmp_path: Path) -> None:
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    torch.manual_seed(0)
    before = eval_loss(CausalVideoVAE(tiny()), clips)  # train_vae initialises with the same seed
    result = train_vae(small_config(30), tmp_path, progress=False)
    after = eval_loss(result.model, clips)
    assert result.step == 30 and len(result.losses) == 30 and np.isfinite(result.losses).all()
    assert after < 0.75 * before, (before, after)
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:5])


def half_size_error(model: CausalVideoVAE, clips: torch.Tensor) -> float:
    """Mean L1 between the decoded 2 x 2-pooled latent and the 2 x 2-pooled clips."""
    model.eval()
    with torch.no_grad():
        z = model.encode(clips).mode()
        return float((model.decode(halve(z), clips.shape[2]) - halve(clips)).abs().mean())


def test_scale_equivariance_teaches_the_pooled_latent_to_decode_to_the_pooled_clip(tmp_path: Path) -> None:
    clips = to_model_input(heldout_clips("shapes", 4, num_frames=5, height=32, width=32), torch.device("cpu"))
    plain = train_vae(small_config(60), tmp_path / "plain", progress=False).model
    equivariant = train_vae(small_config(60, scale_equivariance_weight=1.0), tmp_path / "se", progress=False)
    assert "scale_eq" in json.loads((tmp_path / "se" / "log.jsonl").read_text().splitlines()[-1])
    # Same start, same batches: the term is what makes the pooled latent decode to the pooled clip
    # (measured: 0.25 against 0.34 mean L1).
    assert half_size_error(equivariant.model, clips) < 0.85 * half_size_error(plain, clips)
    torch.manual_seed(0)
    assert eval_loss(equivariant.model, clips) < 0.75 * eval_loss(CausalVideoVAE(tiny()), clips)  # and it still learns
    with pytest.raises(ValueError, match="decoder_only freezes"):
        small_config(2, scale_equivariance_weight=1.0, decoder_only=True)


def test_the_round_trip_decodes_the_pooled_latent_only_on_an_even_latent_grid() -> None:
    vae = CausalVideoVAE(tiny())
    x = torch.rand(2, 3, 5, 32, 48) * 2 - 1
    reconstruction, _, half = RoundTrip(vae, scale_equivariance=True)(x, torch.Generator().manual_seed(0))
    assert reconstruction.shape == x.shape and half.shape == (2, 3, 5, 16, 24)
    assert RoundTrip(vae)(x, torch.Generator().manual_seed(0))[2] is None  # off unless asked
    odd = torch.rand(1, 3, 5, 24, 32) * 2 - 1  # 3 latent rows: no 2 x 2 pooling of them
    assert RoundTrip(vae, scale_equivariance=True)(odd, torch.Generator().manual_seed(0))[2] is None


def test_a_run_killed_and_resumed_ends_where_an_uninterrupted_run_does(tmp_path: Path) -> None:
    whole = train_vae(small_config(10), tmp_path / "whole", progress=False)

    # Stop at step 6, then throw away the step-6 checkpoint: as if the process died at step 6
    # with its last save at step 4, so the resumed run redoes steps 5 and 6.
    first = train_vae(small_config(10), tmp_path / "split", stop_at=6, progress=False)
    assert first.step == 6
    checkpoint.checkpoint_path(tmp_path / "split", 6).unlink()
    second = train_vae(small_config(10), tmp_path / "split", progress=False)

    assert second.step == 10 and np.isfinite(second.losses).all()
    assert second.losses == whole.losses[4:]  # the same batches, the same noise, the same losses
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    steps = [int(m) for m in re.findall(r'"step": (\d+)', (tmp_path / "split" / "log.jsonl").read_text())]
    assert steps == list(range(1, 11))  # the redone steps are logged once


def test_resuming_with_another_model_config_is_refused(tmp_path: Path) -> None:
    train_vae(small_config(2, checkpoint_every=1), tmp_path, progress=False)
    other = small_config(4)
    other.model.latent_channels = 8
    with pytest.raises(ValueError, match="another model config"):
        train_vae(other, tmp_path, progress=False)


# ---- train vae CLI ------------------------------------------------------------------------

def test_train_vae_cli_exports_a_loadable_model_with_latent_statistics(tmp_path: Path) -> None:
    export = tmp_path / "export"
    result = cli("train", "vae", *TINY_ARGS, "--steps", "3", "--stats-clips", "4", "--run-dir", tmp_path / "run", "--export", export)
    assert result.returncode == 0, result.stderr
    assert "trained to step 3 of 3" in result.stdout and f"exported to {export}" in result.stdout
    model = CausalVideoVAE.from_pretrained(export)
    assert model.config.block_out_channels == tiny().block_out_channels
    assert model.config.latents_std != (1.0,) * 4 and all(s > 0 for s in model.config.latents_std)
    assert checkpoint.latest_checkpoint(tmp_path / "run").name == "step_00000003.pt"

    # Run again with more steps: it resumes from step 3 rather than starting over.
    again = cli("train", "vae", *TINY_ARGS, "--steps", "4", "--stats-clips", "0", "--run-dir", tmp_path / "run", "--export", export)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stdout and "trained to step 4 of 4" in again.stdout

    # The same folder with another model: refused in one line, not resumed into a mismatched model.
    other = cli("train", "vae", "--preset", "default", "--steps", "5", "--run-dir", tmp_path / "run")
    assert other.returncode == 2 and "another model config" in other.stderr and other.stderr.count("\n") == 1


def test_train_vae_cli_can_train_a_vae_at_4x_spatial_compression(tmp_path: Path) -> None:
    export = tmp_path / "export"
    args = ("--spatial-compression", "4", "--steps", "2", "--stats-clips", "2", "--run-dir", tmp_path / "run", "--export", export)
    result = cli("train", "vae", *TINY_ARGS, *args)
    assert result.returncode == 0, result.stderr
    model = CausalVideoVAE.from_pretrained(export)
    assert model.spatial_compression == 4 and model.config.compression_ratio == 4 * 4 * 4 * 3 / 4
    with torch.no_grad():
        assert model.encode(torch.zeros(1, 3, 5, 32, 32)).mode().shape[-2:] == (8, 8)

    # A fine-tune from it at another compression refolds it (vae/grow.refold_spatial) and trains on.
    back = tmp_path / "back"
    again = cli("train", "vae", *TINY_ARGS, "--init-from", export, "--spatial-compression", "8", "--steps", "1",
                 "--stats-clips", "2", "--run-dir", tmp_path / "ft", "--export", back)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert CausalVideoVAE.from_pretrained(back).spatial_compression == 8
    # ... which changes the latent, so not with a half of the VAE frozen: one line, exit 2.
    frozen = cli("train", "vae", *TINY_ARGS, "--init-from", export, "--spatial-compression", "8", "--decoder-only",
                  "--run-dir", tmp_path / "frozen")  # fmt: skip
    assert frozen.returncode == 2 and "--spatial-compression" in frozen.stderr and frozen.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--steps", "0"), "steps must be at least 1"),
        (("--clip-size", "16x64x64"), "1 + 4k"),
        (("--resume",), "--resume: "),
        (("--latent-noise", "-0.5"), "latent_noise must be in [0, 10]"),
        (("--scale-equivariance-weight", "-1"), "scale_equivariance_weight must be non-negative"),
    ],
)
def test_train_vae_cli_rejects_bad_arguments_in_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = cli("train", "vae", "--preset", "tiny", "--run-dir", tmp_path / "run", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_saves_a_checkpoint_and_the_rerun_finishes(tmp_path: Path) -> None:
    # Far more steps than the signal can take to arrive, so the run cannot end on its own first.
    args = ("train", "vae", *TINY_ARGS, "--checkpoint-every", "1000", "--stats-clips", "0")
    run = tmp_path / "run"
    process = subprocess.Popen(
        [str(KINETOSCOPE), *args, "--steps", "100000", "--run-dir", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD_ENV,
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
    rerun = cli(*args, "--steps", end, "--run-dir", run)
    assert rerun.returncode == 0 and f"trained to step {end} of {end}" in rerun.stdout

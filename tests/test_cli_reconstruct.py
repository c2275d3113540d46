"""`kinetoscope reconstruct` through the installed console script, with a tiny random VAE: frame
counts and sizes off the latent grid, the PSNR it prints, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the photos of the test clips")

from kinetoscope.data.vae_mix import heldout_clips  # noqa: E402
from kinetoscope.io.video import read_video, write_video  # noqa: E402
from kinetoscope.vae.config import tiny  # noqa: E402
from kinetoscope.vae.model import CausalVideoVAE  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command runs single-threaded: a tiny model gains nothing from a second thread, and two
    OpenMP threads on a shared CPU made the VAE tests 5-10x slower (test_vae_training.py)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return CausalVideoVAE(tiny()).save_pretrained(tmp_path_factory.mktemp("vae") / "tiny")


def test_reconstruct_an_mp4_off_the_latent_grid_keeps_its_frames_and_size(run_cli, tmp_path: Path, tiny_vae_dir: Path) -> None:
    # 10 frames of 36 x 52: neither 1 + 4k frames nor multiples of 8, so padding and cropping are exercised.
    clip = heldout_clips("photos", 1, num_frames=9, height=36, width=52)[0]
    video = write_video(tmp_path / "in.mp4", np.concatenate([clip, clip[-1:]]), fps=8)
    out = tmp_path / "out.mp4"
    result = run_cli("reconstruct", video, "-o", out, "--model", tiny_vae_dir)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(rf"PSNR \d+\.\d\d dB over 10 frames of 52x36; wrote {re.escape(str(out))}\n", result.stdout)
    frames, fps = read_video(out)
    assert frames.shape == (10, 36, 52, 3) and fps == pytest.approx(8)


def test_reconstruct_reports_the_psnr_of_what_it_writes(run_cli, tmp_path: Path, tiny_vae_dir: Path) -> None:
    image = heldout_clips("shapes", 1, num_frames=1, height=32, width=48)[0]
    write_video(tmp_path / "in.png", image, fps=8)
    result = run_cli("reconstruct", tmp_path / "in.png", "-o", tmp_path / "out.png", "--model", tiny_vae_dir)
    assert result.returncode == 0, result.stderr
    printed = float(re.match(r"PSNR (\d+\.\d+) dB over 1 frame of 48x32", result.stdout).group(1))
    written, _ = read_video(tmp_path / "out.png")
    mse = np.mean((written.astype(float) - image.astype(float)) ** 2)
    assert printed == pytest.approx(10 * np.log10(255**2 / mse), abs=0.01)


@pytest.mark.parametrize("kind", ["missing", "corrupt", "truncated", "bad-model", "bad-suffix"])
def test_reconstruct_bad_input_is_one_line_exit_2_and_no_output(run_cli, tmp_path: Path, tiny_vae_dir: Path, kind: str) -> None:
    good = write_video(tmp_path / "good.mp4", heldout_clips("shapes", 1, num_frames=9, height=32, width=32)[0], fps=8)
    source, model, out = good, tiny_vae_dir, tmp_path / "out.mp4"
    if kind == "missing":
        source = tmp_path / "nope.mp4"
    elif kind == "corrupt":
        source = tmp_path / "corrupt.mp4"
        source.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        source = tmp_path / "truncated.mp4"
        source.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    elif kind == "bad-model":
        model = tmp_path / "no-model-here"
    else:
        out = tmp_path / "out.avi"
    result = run_cli("reconstruct", source, "-o", out, "--model", model)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("kinetoscope: error: ") and result.stderr.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".out*"))

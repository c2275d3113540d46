"""The VAE's adversarial term: the patch discriminator, its hinge losses, and adversarial runs
(resumed exactly, with the discriminator in the checkpoint; the CLI's flags)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the training photos")

from dit_models import one_thread  # noqa: E402, F401  (tests/ is on sys.path; one_thread is autouse)
from kinetoscope.data.vae_mix import ClipBucket, VAEMixConfig, heldout_clips  # noqa: E402
from kinetoscope.training import checkpoint  # noqa: E402
from kinetoscope.training.discriminator import (  # noqa: E402
    DiscriminatorConfig,
    PatchDiscriminator,
    discriminator_hinge,
    generator_hinge,
)
from kinetoscope.training.vae import VAETrainConfig, to_model_input, train_vae  # noqa: E402
from kinetoscope.vae.config import tiny  # noqa: E402

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"


def _config(steps: int, **overrides) -> VAETrainConfig:
    buckets = (ClipBucket(5, 32, 32, 1.0),)
    mix = VAEMixConfig(buckets=buckets, batch_size=1, seed=0, shapes_weight=1.0, photos_weight=1.0, lavfi_weight=0.0)
    settings = dict(model=tiny(), mix=mix, steps=steps, lr=3e-3, warmup_steps=3, checkpoint_every=4, stats_clips=0)
    return VAETrainConfig(**(settings | overrides), device="cpu")


def test_hinge_losses_on_known_logits() -> None:
    sure = torch.tensor([2.0, 1.0])
    assert float(discriminator_hinge(sure, -sure)) == 0.0  # beyond the margins: nothing to learn
    assert float(discriminator_hinge(torch.zeros(2), torch.zeros(2))) == 1.0
    assert float(generator_hinge(torch.tensor([-1.0, 3.0]))) == -1.0


def test_the_discriminator_learns_to_tell_sharp_shapes_from_blurred_ones() -> None:
    torch.manual_seed(0)
    clips = to_model_input(heldout_clips("shapes", 8, num_frames=3, height=32, width=32), torch.device("cpu"))
    blurred = F.avg_pool3d(clips, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False)
    net = PatchDiscriminator(DiscriminatorConfig(width=16, layers=2))
    assert net(clips).shape == (8, 3, 8, 8)  # one logit per patch per frame
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3, betas=(0.5, 0.9))
    train, held = slice(0, 6), slice(6, 8)
    for _ in range(60):
        loss = discriminator_hinge(net(clips[train]), net(blurred[train]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        # Held-out clips: the sharp ones score above their blurred copies.
        assert float(net(clips[held]).mean()) > float(net(blurred[held]).mean()) + 0.5


def test_an_adversarial_run_logs_both_losses_and_resumes_exactly(tmp_path: Path) -> None:
    config = _config(8, adversarial_weight=0.1, adversarial_start=3)
    whole = train_vae(config, tmp_path / "whole", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert all("disc" in r for r in rows) and np.isfinite([r["disc"] for r in rows]).all()
    # The decoder reads the adversarial term from step 3 (0-based) on: logged steps 4..8.
    assert [r["step"] for r in rows if "adv" in r] == [4, 5, 6, 7, 8]
    state = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(tmp_path / "whole"))
    assert "discriminator" in state and "discriminator_optimizer" in state

    first = train_vae(config, tmp_path / "split", stop_at=5, progress=False)
    assert first.step == 5
    checkpoint.checkpoint_path(tmp_path / "split", 5).unlink()  # as if killed after the step-4 save
    second = train_vae(config, tmp_path / "split", progress=False)
    assert second.losses == whole.losses[4:]  # discriminator and all: the same run
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_the_adversarial_term_changes_the_decoders_updates(tmp_path: Path) -> None:
    plain = train_vae(_config(5), tmp_path / "plain", progress=False)
    adversarial = train_vae(_config(5, adversarial_weight=0.5), tmp_path / "adversarial", progress=False)
    assert plain.losses[0] != adversarial.losses[0]  # the term is in the loss from step 0
    assert any(not torch.equal(a, b) for a, b in zip(plain.model.parameters(), adversarial.model.parameters()))


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--adversarial-weight", "-1"), "adversarial_weight"), (("--adversarial-start", "-2"), "adversarial_start")],
)
def test_train_vae_cli_rejects_bad_adversarial_flags(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = subprocess.run(
        [str(KINETOSCOPE), "train", "vae", "--preset", "tiny", "--run-dir", str(tmp_path / "run"), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())

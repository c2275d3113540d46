"""Data-parallel training (DiT and VAE): N processes (torchrun, gloo on the CPU) train the model one does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from kinetoscope.training.denoiser import Denoiser
from kinetoscope.training.dit import train_dit
from kinetoscope.training.dit_step import diffusion_loss, draw_batch
from kinetoscope.training.distributed import World
from test_dit_training import _buckets, _config

TESTS = Path(__file__).parent


def _gradients(model: Denoiser) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("self_condition", [False, True], ids=["plain", "self-conditioned"])
@pytest.mark.parametrize("size", [2, 3])
def test_the_shares_losses_average_to_the_whole_batchs_and_so_do_their_gradients(size, self_condition):
    torch.set_num_threads(1)
    config = _config(masks={"none": 0.5, "first": 0.5})  # given frames leave the shares unequal weights
    # A self-conditioned model's estimate is drawn for the whole batch and made per share.
    config.model = replace(config.model, self_condition=self_condition)
    torch.manual_seed(0)
    model = Denoiser(config.model, config.text)
    batch = draw_batch(config, _buckets(), torch.tensor([1.0, 0.0], dtype=torch.float64), torch.Generator().manual_seed(0))
    assert batch.given.any() and not batch.given.all()

    whole = diffusion_loss(model, batch, config, torch.Generator().manual_seed(1))
    whole.backward()
    expected = _gradients(model)
    model.zero_grad()
    shares = []
    for rank in range(size):
        loss = diffusion_loss(model, batch, config, torch.Generator().manual_seed(1), world=World(rank, size))
        (loss / size).backward()  # what DDP's gradient average does
        shares.append(float(loss.detach()))
    torch.testing.assert_close(torch.tensor(sum(shares) / size), whole.detach(), rtol=1e-5, atol=1e-6)
    for name, grad in _gradients(model).items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def _torchrun(*args: str | Path, processes: int = 2) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node N ARGS...`` on the CPU (gloo), one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def _assert_same_run(state: dict, one) -> None:
    for key, value in one.denoiser.state_dict().items():
        torch.testing.assert_close(state["model"][key], value, rtol=1e-3, atol=1e-5, msg=key)
    for key, value in one.ema.shadow.items():
        torch.testing.assert_close(state["ema"][key], value, rtol=1e-3, atol=1e-5, msg=key)


@pytest.mark.parametrize(
    "sharding",
    [[], ["--fsdp"], pytest.param(["--compile"], marks=pytest.mark.slow)],  # compiling: ~2 minutes per process
    ids=["ddp", "fsdp", "ddp-compiled"],
)
def test_two_processes_train_what_one_does_and_only_rank_0_writes(tmp_path, sharding):
    torch.set_num_threads(1)
    one = train_dit(_config(steps=6, checkpoint_every=3), _buckets(), tmp_path / "one", progress=False)
    run = _torchrun(TESTS / "ddp_worker.py", tmp_path / "two", tmp_path / "two.pt", *sharding)
    assert run.returncode == 0, run.stderr[:6000]
    two = torch.load(tmp_path / "two.pt")
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one.losses), rtol=1e-4, atol=1e-6)
    _assert_same_run(two, one)
    if "--fsdp" in sharding:  # each process held about half the weights
        assert two["whole"] * 0.45 < two["held"] < two["whole"] * 0.55
    else:
        assert two["held"] == two["whole"]
    lines = [json.loads(line) for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]  # one writer: no line twice
    assert sorted(p.name for p in (tmp_path / "two").glob("step_*.pt")) == sorted(p.name for p in (tmp_path / "one").glob("step_*.pt"))


# FSDP through this path is slow (gloo gathers every block); the quick run checks it once, above.
@pytest.mark.parametrize("sharding", [[], pytest.param(["--fsdp"], marks=pytest.mark.slow)], ids=["ddp", "fsdp"])
def test_a_run_started_on_two_processes_resumes_on_one(tmp_path, sharding):
    torch.set_num_threads(1)
    one = train_dit(_config(steps=6, checkpoint_every=3), _buckets(), tmp_path / "one", progress=False)
    run = _torchrun(TESTS / "ddp_worker.py", tmp_path / "split", tmp_path / "half.pt", 3, *sharding)
    assert run.returncode == 0, run.stderr[:6000]
    resumed = train_dit(_config(steps=6, checkpoint_every=3), _buckets(), tmp_path / "split", progress=False)
    assert resumed.step == 6 and len(resumed.losses) == 3
    _assert_same_run({"model": resumed.denoiser.state_dict(), "ema": resumed.ema.shadow}, one)


def test_a_run_started_on_one_process_resumes_sharded_on_two(tmp_path):
    torch.set_num_threads(1)
    one = train_dit(_config(steps=6, checkpoint_every=3), _buckets(), tmp_path / "one", progress=False)
    train_dit(_config(steps=6, checkpoint_every=3), _buckets(), tmp_path / "split", progress=False, stop_at=3)
    run = _torchrun(TESTS / "ddp_worker.py", tmp_path / "split", tmp_path / "two.pt", "--fsdp")
    assert run.returncode == 0, run.stderr[:6000]
    two = torch.load(tmp_path / "two.pt")
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one.losses[3:]), rtol=1e-4, atol=1e-6)
    _assert_same_run(two, one)


# FSDP through this path is slow (gloo gathers every block); the quick run checks it once, above.
@pytest.mark.parametrize("sharding", [[], pytest.param(["--fsdp"], marks=pytest.mark.slow)], ids=["ddp", "fsdp"])
def test_two_processes_train_the_lora_adapters_one_does(tmp_path, sharding):
    pytest.importorskip("peft", reason="LoRA needs peft (the 'lora' extra)")
    from test_dit_training import _export

    torch.set_num_threads(1)
    _export(train_dit(_config(steps=4), _buckets(), tmp_path / "base-run", progress=False), tmp_path / "base")
    config = _config(steps=6, checkpoint_every=3, init_from=tmp_path / "base", lora_rank=4)
    one = train_dit(config, _buckets(), tmp_path / "one", progress=False)
    run = _torchrun(TESTS / "ddp_worker.py", tmp_path / "two", tmp_path / "two.pt", "--lora", tmp_path / "base", *sharding)
    assert run.returncode == 0, run.stderr[:6000]
    two = torch.load(tmp_path / "two.pt")
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one.losses), rtol=1e-4, atol=1e-6)
    _assert_same_run(two, one)
    assert any(".lora_B." in key and value.abs().max() > 0 for key, value in two["ema"].items())


# FSDP through this path is slow (gloo gathers every block); the quick run checks it once, above.
@pytest.mark.parametrize("sharding", [[], pytest.param(["--fsdp"], marks=pytest.mark.slow)], ids=["ddp", "fsdp"])
def test_torchrun_trains_and_exports_through_the_command_line(tmp_path, sharding):
    run = _torchrun("-m", "kinetoscope", "train", "dit", "--preset", "debug", "--steps", 2, "--run-dir", tmp_path / "run",
                    "--workers", 1, "--threads", 1, "--no-progress", *sharding)  # fmt: skip
    assert run.returncode == 0, run.stderr[:6000]
    assert run.stdout.count("exported to") == 1  # rank 0 alone prints and exports
    assert (tmp_path / "run" / "final" / "transformer" / "config.json").is_file()
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2]


def test_fsdp_in_one_process_says_it_trains_unsharded(tmp_path, capsys):
    from kinetoscope.cli.main import main

    args = ["train", "dit", "--preset", "debug", "--steps", "1", "--val-every", "0", "--workers", "1", "--threads", "1",
            "--no-progress", "--fsdp", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "note: --fsdp shards the model over several processes, and this is one" in out and "exported to" in out


def test_a_process_that_fails_alone_gives_its_message_and_the_others_one_line(tmp_path):
    from kinetoscope.cli.main import main

    debug = ["train", "dit", "--preset", "debug", "--cache-dir", tmp_path / "cache", "--workers", 1, "--threads", 1, "--no-progress"]
    assert main([*map(str, debug), "--steps", "1", "--val-every", "0", "--run-dir", str(tmp_path / "one")]) == 0
    # Rank 0 finds the cache holds other clips while rank 1 waits for it at a barrier.
    run = _torchrun("-m", "kinetoscope", *debug, "--data-seed", 1, "--run-dir", tmp_path / "two")
    assert run.returncode != 0
    assert "kinetoscope: error: " in run.stderr and "caches clips of another data config" in run.stderr
    assert "kinetoscope: rank 1 stopped: another training process failed" in run.stderr
    assert "[rank1]: Traceback" not in run.stderr and "Connection closed" not in run.stderr


def test_two_processes_train_the_vae_one_does_discriminator_and_latent_noise_included(tmp_path):
    pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the training photos")
    from ddp_vae_worker import vae_config
    from kinetoscope.training.vae import train_vae

    torch.set_num_threads(1)
    one = train_vae(vae_config(), tmp_path / "one", progress=False)
    run = _torchrun(TESTS / "ddp_vae_worker.py", tmp_path / "two", tmp_path / "two.pt")
    assert run.returncode == 0, run.stderr[:6000]
    two = torch.load(tmp_path / "two.pt")
    # A GAN at this learning rate amplifies float rounding (its adversarial loss swings from -1.7 to
    # 2.6 in two steps): the runs agree to ~3e-4 here, where an unweighted mean of the uneven shares
    # is off by more (checked by breaking the scaling).
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one.losses), rtol=1e-3, atol=1e-6)
    for key, value in one.model.state_dict().items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-2, atol=1e-3, msg=key)
    disc = torch.load(sorted((tmp_path / "one").glob("step_*.pt"))[-1], weights_only=False)["discriminator"]
    for key, value in disc.items():
        torch.testing.assert_close(two["disc"][key], value, rtol=1e-2, atol=1e-3, msg=key)
    assert len((tmp_path / "two" / "log.jsonl").read_text().splitlines()) == 4


@pytest.mark.slow  # the two-process VAE step is checked against one process above, in the quick run
def test_torchrun_trains_the_vae_through_the_command_line_and_refuses_a_batch_too_small(tmp_path):
    pytest.importorskip("skimage", reason="scikit-image (the 'train' extra) ships the training photos")
    from vae_runs import TINY_ARGS

    args = ["-m", "kinetoscope", "train", "vae", *TINY_ARGS, "--steps", 2, "--stats-clips", 2, "--run-dir", tmp_path / "run"]
    run = _torchrun(*[("2" if a == "1" and args[i - 1] == "--batch-size" else a) for i, a in enumerate(args)])
    assert run.returncode == 0, run.stderr[:6000]
    assert run.stdout.count("exported to") == 1 and (tmp_path / "run" / "final" / "config.json").is_file()
    too_small = _torchrun(*args[:-1], tmp_path / "small")
    assert too_small.returncode != 0 and "--batch-size 1: fewer clips than the 2 training processes" in too_small.stderr
    assert not (tmp_path / "small" / "final").exists()


def test_a_batch_smaller_than_the_process_count_or_a_decoded_loss_is_refused(tmp_path, monkeypatch):
    import kinetoscope.training.dit as dit

    monkeypatch.setattr(dit, "current", lambda: World(0, 64))
    with pytest.raises(ValueError, match="fewer clips than the 64 training processes"):
        train_dit(_config(steps=1), _buckets(), tmp_path, progress=False)
    monkeypatch.setattr(dit, "current", lambda: World(0, 2))
    with pytest.raises(ValueError, match="decoded_weight trains in one process only"):
        train_dit(_config(steps=1, decoded_weight=1.0), _buckets(), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())  # refused before anything was written

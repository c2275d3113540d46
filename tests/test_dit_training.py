"""DiT training on cached latents: the loss falls, resuming is exact, and `train dit` exports a model."""

from __future__ import annotations

import json

import pytest
import torch

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.data.shapes_latents import LatentBucketSpec, ShapesLatentsConfig
from kinetoscope.shapes.vocabulary import caption_language
from kinetoscope.text import WordTextEncoderConfig, WordTokenizer
from kinetoscope.training.dit import DiTTrainConfig, EMA, ema_denoiser, train_dit
from kinetoscope.training.dit_step import validation_loss
from kinetoscope.transformer import DiTConfig


def _config(**kwargs) -> DiTTrainConfig:
    vocab = WordTokenizer.from_words(caption_language()).vocab
    data = ShapesLatentsConfig(buckets=(LatentBucketSpec(8, 32, 32, 16, 0.8), LatentBucketSpec(1, 32, 32, 16, 0.2)))
    return DiTTrainConfig(
        model=DiTConfig(in_channels=4, text_dim=32, width=64, depth=2, heads=2),
        text=WordTextEncoderConfig(vocab=vocab, width=32, depth=1, heads=2),
        data=data,
        **({"tokens_per_batch": 128, "warmup_steps": 5, "lr": 2e-3, "checkpoint_every": 5} | kwargs),
    )


def _buckets(seed: int = 0) -> list[LatentBucket]:
    # Two captions with clearly different latents: a model that reads text can tell them apart.
    g = torch.Generator().manual_seed(seed)
    videos, images = [], []
    for i in range(16):
        sign = 1.0 if i % 2 else -1.0
        videos.append(sign + 0.1 * torch.randn(4, 3, 4, 4, generator=g))
        images.append(sign + 0.1 * torch.randn(4, 1, 4, 4, generator=g))
    records = [{"text": "a red ball" if i % 2 else "a blue box"} for i in range(16)]
    return [LatentBucket(torch.stack(videos), records), LatentBucket(torch.stack(images), records)]


def test_loss_falls(tmp_path):
    torch.set_num_threads(1)
    result = train_dit(_config(steps=60), _buckets(), tmp_path, progress=False)
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.6 * first
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) == 60 and lines[-1]["step"] == 60


def test_validation_is_logged_falls_and_leaves_training_as_it_was(tmp_path):
    torch.set_num_threads(1)
    held_out = _buckets(seed=1)[0]  # clips the run never sees
    plain = train_dit(_config(steps=60), _buckets(), tmp_path / "plain", progress=False)
    watched = train_dit(_config(steps=60, val_every=20), _buckets(), tmp_path / "watched", progress=False, validation=held_out)
    assert [step for step, _ in watched.val_losses] == [20, 40, 60]
    assert watched.val_losses[-1][1] < 0.8 * watched.val_losses[0][1]
    logged = [json.loads(line) for line in (tmp_path / "watched" / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["val_loss"]) for r in logged if "val_loss" in r] == [(s, round(v, 5)) for s, v in watched.val_losses]
    # Validation draws from its own generator: the trained weights are those of a run without it.
    for key, value in plain.denoiser.state_dict().items():
        assert torch.equal(watched.denoiser.state_dict()[key], value), key
    # Each clip's time and noise are fixed: the same weights give the same loss.
    model = ema_denoiser(watched)
    config = _config(steps=60)
    assert validation_loss(model, held_out, config) == validation_loss(model, held_out, config)
    assert validation_loss(model, held_out, config, seed=1) != validation_loss(model, held_out, config)


def test_resuming_matches_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    whole = train_dit(_config(steps=10), _buckets(), tmp_path / "whole", progress=False)
    train_dit(_config(steps=10), _buckets(), tmp_path / "split", stop_at=5, progress=False)
    split = train_dit(_config(steps=10), _buckets(), tmp_path / "split", progress=False)
    assert split.step == 10 and len(split.losses) == 5
    for key, value in whole.denoiser.state_dict().items():
        torch.testing.assert_close(split.denoiser.state_dict()[key], value, rtol=0, atol=0)
    for key, value in whole.ema.shadow.items():
        torch.testing.assert_close(split.ema.shadow[key], value, rtol=0, atol=0)


def test_a_run_folder_of_another_model_is_refused(tmp_path):
    train_dit(_config(steps=5), _buckets(), tmp_path, progress=False)
    other = _config(steps=10)
    other.model = DiTConfig(in_channels=4, text_dim=32, width=32, depth=2, heads=2)
    with pytest.raises(ValueError, match=r"another model config \(width 64 not 32\)"):
        train_dit(other, _buckets(), tmp_path, progress=False)


def test_ema_starts_at_the_weights_and_follows_them():
    layer = torch.nn.Linear(2, 2)
    ema = EMA(layer, decay=0.9)
    torch.testing.assert_close(ema.shadow["weight"], layer.weight.detach())
    with torch.no_grad():
        layer.weight.add_(1.0)
    before = ema.shadow["weight"].clone()
    ema.update(layer, step=1000)
    torch.testing.assert_close(ema.shadow["weight"], before + 0.1, atol=1e-6, rtol=0)


def test_exported_ema_denoiser_holds_the_average(tmp_path):
    result = train_dit(_config(steps=6), _buckets(), tmp_path, progress=False)
    trained = ema_denoiser(result)
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(value, result.ema.shadow[key])


def test_config_checks_the_text_width():
    with pytest.raises(ValueError, match="text_dim"):
        DiTTrainConfig(model=DiTConfig(in_channels=8, text_dim=64), text=WordTextEncoderConfig(width=32))


def test_motion_weighted_loss_trains_and_rejects_negative_weights(tmp_path):
    torch.set_num_threads(1)
    result = train_dit(_config(steps=30, motion_weight=4.0), _buckets(), tmp_path, progress=False)
    assert sum(result.losses[-5:]) / 5 < 0.7 * sum(result.losses[:5]) / 5
    with pytest.raises(ValueError, match="motion_weight"):
        _config(motion_weight=-1.0)


def test_load_run_ema_gives_the_newest_checkpoints_average(tmp_path):
    from kinetoscope.training.dit import load_run_ema

    with pytest.raises(ValueError, match="no checkpoint"):
        load_run_ema(tmp_path)
    result = train_dit(_config(steps=12), _buckets(), tmp_path, progress=False)  # checkpoints at 5, 10, 12
    denoiser, config, step = load_run_ema(tmp_path)
    assert step == 12 and config.steps == 12 and not denoiser.training
    for key, value in ema_denoiser(result).state_dict().items():
        torch.testing.assert_close(denoiser.state_dict()[key], value, rtol=0, atol=0)


def _export(result, folder):
    trained = ema_denoiser(result)
    trained.transformer.save_pretrained(folder / "transformer")
    trained.text_encoder.save_pretrained(folder / "text_encoder")
    return trained


def test_a_fine_tune_starts_from_the_folders_weights_and_a_resume_keeps_its_own(tmp_path):
    torch.set_num_threads(1)
    base = train_dit(_config(steps=30), _buckets(), tmp_path / "base", progress=False)
    trained = _export(base, tmp_path / "model")
    scratch = train_dit(_config(steps=1, lr=1e-9), _buckets(), tmp_path / "scratch", progress=False)
    held_out = _buckets(seed=1)[0]
    tuned = train_dit(_config(steps=1, lr=1e-9, init_from=tmp_path / "model"), _buckets(), tmp_path / "tune",
                      progress=False, validation=held_out)  # fmt: skip
    # A fine-tune's validation starts at step 0, with the loaded model's loss.
    assert [step for step, _ in tuned.val_losses] == [0, 1]
    assert tuned.val_losses[0][1] == pytest.approx(validation_loss(trained, held_out, _config(steps=1)), rel=1e-5)
    # With a vanishing step size the first step's weights are the starting ones.
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(tuned.denoiser.state_dict()[key], value, atol=1e-6, rtol=0)
    # Starting from a trained model, the first loss is already low; from scratch it is not.
    assert tuned.losses[0] < 0.6 * scratch.losses[0]
    # Resuming reads the run's checkpoint, not the folder: later steps continue the fine-tune.
    more = train_dit(_config(steps=3, lr=1e-9, init_from=tmp_path / "model"), _buckets(), tmp_path / "tune",
                     progress=False, validation=held_out)  # fmt: skip
    assert more.step == 3 and len(more.losses) == 2 and [step for step, _ in more.val_losses] == [3]


def test_a_fine_tune_from_a_model_of_another_shape_is_refused(tmp_path):
    base = train_dit(_config(steps=2), _buckets(), tmp_path / "base", progress=False)
    _export(base, tmp_path / "model")
    other = _config(steps=2, init_from=tmp_path / "model")
    other.model = DiTConfig(in_channels=4, text_dim=32, width=32, depth=2, heads=2)
    with pytest.raises(ValueError, match="transformer config"):
        train_dit(other, _buckets(), tmp_path / "tune", progress=False)


def fine_tune_a_trained_model(tmp_path, model: DiTConfig, steps: int):
    """A 20-step model exported to ``tmp_path / "model"``, then fine-tuned ``steps`` steps as ``model``
    (a grown architecture) with validation on held-out clips: the exported pair, the held-out
    bucket and the fine-tune's result."""
    torch.set_num_threads(1)
    base = train_dit(_config(steps=20), _buckets(), tmp_path / "base", progress=False)
    trained = _export(base, tmp_path / "model")
    held_out = _buckets(seed=1)[0]
    config = _config(steps=steps, init_from=tmp_path / "model")
    config.model = model
    return trained, held_out, train_dit(config, _buckets(), tmp_path / "tune", progress=False, validation=held_out)


def test_a_fine_tune_may_deepen_the_model_starting_where_it_was(tmp_path):
    deeper = DiTConfig(in_channels=4, text_dim=32, width=64, depth=3, heads=2)
    trained, held_out, tuned = fine_tune_a_trained_model(tmp_path, deeper, steps=3)
    assert len(tuned.denoiser.transformer.blocks) == 3
    # Step 0's validation is the two-block model's loss: the added block starts as a no-op.
    assert tuned.val_losses[0][1] == pytest.approx(validation_loss(trained, held_out, _config(steps=1)), rel=1e-5)
    added = tuned.denoiser.transformer.blocks[1].mlp.fc2.weight  # deepen_layout(2, 3): block 0, its copy, block 1
    assert added.abs().sum() > 0  # trained away from its zero start
    # Resumed without the deeper depth, the run says what differs instead of loading a mismatched model.
    with pytest.raises(ValueError, match="depth 3 not 2"):
        train_dit(_config(steps=4, init_from=tmp_path / "model"), _buckets(), tmp_path / "tune", progress=False)


def test_cli_fine_tunes_the_shipped_model_on_straight_clips(run_cli, tmp_path):
    from kinetoscope.data.latent_cache import load_buckets
    from kinetoscope.pipelines.text_to_video import default_model_dir
    from kinetoscope.shapes.render import first_bounce, render_clip
    from kinetoscope.shapes.spec import SceneSpec

    shipped = default_model_dir()
    run = tmp_path / "run"
    result = run_cli("train", "dit", "--preset", "debug", "--init-from", shipped, "--steps", 2, "--run-dir", run,
                     "--min-straight-frames", 12, "--workers", 1, "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    exported = json.loads((run / "final" / "transformer" / "config.json").read_text())
    assert exported == json.loads((shipped / "transformer" / "config.json").read_text())
    clips = [b for b in load_buckets(run / "latents") if b.shape[1] > 1][0].records
    runs = [first_bounce(render_clip(SceneSpec.from_dict(r["scene"]), seed=r["seed"]).boxes).min() for r in clips]
    assert min(runs) >= 12


def test_cli_fine_tunes_on_the_latents_of_the_vae_inside_the_init_model(run_cli, tiny_model_dir, tmp_path):
    # The tiny model's transformer reads its tiny VAE's 4-channel latents; the shipped VAE's are 8.
    run = tmp_path / "run"
    args = ("train", "dit", "--preset", "debug", "--init-from", tiny_model_dir, "--steps", 1, "--workers", 1,
            "--threads", 1, "--no-progress")  # fmt: skip
    result = run_cli(*args, "--run-dir", run, timeout=300)
    assert result.returncode == 0, result.stderr
    exported = json.loads((run / "final" / "vae" / "config.json").read_text())
    assert exported == json.loads((tiny_model_dir / "vae" / "config.json").read_text())
    again = run_cli("train", "dit", "--run-dir", run, "--export-now", "--export", tmp_path / "now")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "now" / "vae" / "config.json").read_text() == (run / "final" / "vae" / "config.json").read_text()
    # Another VAE named outright: refused in one line before any caching.
    from kinetoscope.pipelines.text_to_video import default_model_dir

    wrong = run_cli(*args, "--run-dir", tmp_path / "wrong", "--vae", default_model_dir() / "vae")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "4-channel latents but this VAE makes 8" in wrong.stderr
    assert not (tmp_path / "wrong" / "latents").exists()


def test_cli_export_now_pairs_the_checkpoint_with_the_vae_the_run_named(run_cli, tiny_model_dir, tmp_path):
    # A run trained with --vae remembers it: exporting a checkpoint later needs no --vae (the shipped
    # VAE would not read its latents), and a VAE gone since is named in one line.
    import shutil

    vae = shutil.copytree(tiny_model_dir / "vae", tmp_path / "my-vae")
    run = tmp_path / "run"
    result = run_cli("train", "dit", "--preset", "debug", "--vae", vae, "--steps", 1, "--run-dir", run, "--workers", 1,
                     "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    now = run_cli("train", "dit", "--run-dir", run, "--export-now", "--export", tmp_path / "now")
    assert now.returncode == 0, now.stderr
    assert (tmp_path / "now" / "vae" / "config.json").read_text() == (vae / "config.json").read_text()
    shutil.rmtree(vae)
    gone = run_cli("train", "dit", "--run-dir", run, "--export-now", "--export", tmp_path / "later")
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1 and "my-vae, which is gone" in gone.stderr
    assert not (tmp_path / "later").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--init-from", "{tmp}"], "not a model folder"),
        (["--init-from", "{shipped}", "--text-encoder", "{tmp}"], "excludes --text-encoder"),
        (["--min-straight-frames", "-2"], "min_straight_frames"),
        (["--init-from", "{shipped}", "--text-conditioning", "joint"], "excludes --text-conditioning"),
        (["--init-from", "{shipped}", "--patch-size", "1,1,1"], "excludes --patch-size"),
        (["--init-from", "{shipped}", "--width", "128"], "excludes --width"),
        (["--init-from", "{shipped}", "--heads", "8"], "excludes --heads"),
        (["--init-from", "{shipped}", "--depth", "4"], "can only be added"),
        (["--width", "100", "--heads", "3"], "not divisible"),
        (["--depth", "0"], "depth must be a positive int"),
        (["--patch-size", "1,2"], "three positive integers"),
        (["--patch-size", "0,2,2"], "three positive integers"),
        (["--logit-std", "0"], "logit_std > 0"),
        (["--masks", "sideways=0.1"], "unknown mask kind 'sideways'"),
        (["--masks", "suffix=lots"], "must be a number"),
        (["--masks", "suffix=-1"], "0 or more"),
        (["--data-seed", "-1"], "data seed must be 0 or more"),
        (["--val-clips", "0"], "val_clips must be at least 1"),
        (["--val-every", "-5"], "val_every must be 0"),
        (["--decoded-max-t", "0"], "decoded_max_t"),
        (["--decoded-weight", "-1"], "decoded_weight"),
        (["--binding-attributes", "direction,mood"], "expected some of color,shape,size,speed,direction"),
        (["--masks", "none=0,first=0,last=0,first_last=0,prefix=0,suffix=0,random=0"], "not all zero"),
    ],
)
def test_cli_names_bad_fine_tune_arguments(run_cli, tmp_path, args, named):
    from kinetoscope.pipelines.text_to_video import default_model_dir

    args = [a.format(tmp=tmp_path, shipped=default_model_dir()) for a in args]
    result = run_cli("train", "dit", "--run-dir", tmp_path / "run", *args)
    assert result.returncode == 2 and named in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_validates_on_clips_of_their_own_and_caches_the_seed_asked(run_cli, tmp_path):
    from kinetoscope.data.latent_cache import load_buckets

    run = tmp_path / "run"
    result = run_cli("train", "dit", "--preset", "debug", "--steps", 2, "--val-every", 1, "--data-seed", 3, "--run-dir", run,
                     "--workers", 1, "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "val_loss" in r] == [1, 2]
    assert "validation loss at step 2" in result.stdout
    assert json.loads((run / "latents" / "cache.json").read_text())["seed"] == 3
    trained = {r["seed"] for b in load_buckets(run / "latents") for r in b.records}
    validation = [r["seed"] for b in load_buckets(run / "latents-val16") for r in b.records]
    assert len(validation) == 16 and not trained & set(validation)
    # Another seed in the same cache folder is refused, not mixed in.
    again = run_cli("train", "dit", "--preset", "debug", "--steps", 3, "--data-seed", 4, "--run-dir", run,
                    "--workers", 1, "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert again.returncode == 2 and "differs in seed" in again.stderr and "Traceback" not in again.stderr


def test_cli_validates_a_curated_cache_on_sources_held_out_of_training(run_cli, tmp_path):
    from kinetoscope.data.latent_cache import vae_fingerprint, write_shard
    from kinetoscope.pipelines.text_to_video import default_model_dir
    from kinetoscope.vae.model import CausalVideoVAE

    vae = CausalVideoVAE.from_pretrained(default_model_dir() / "vae")
    records = [{"text": f"a red ball moving left {i}", "source": f"video{i // 4}.mp4"} for i in range(40)]
    latents = torch.randn(40, vae.latent_channels, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    write_shard(tmp_path / "cache" / "b0.safetensors", latents, records, vae_fingerprint(vae))
    run = tmp_path / "run"
    result = run_cli("train", "dit", "--data", tmp_path / "cache", "--preset", "debug", "--steps", 2, "--val-every", 1,
                     "--val-clips", 4, "--run-dir", run, "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "validation: 4 clips from 1 source(s)" in result.stdout  # one whole source of 4 clips
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "val_loss" in r] == [1, 2]
    assert "validation loss at step 2" in result.stdout and "(4 clips the run never trained on)" in result.stdout


def test_cli_trains_with_the_mask_mix_asked(run_cli, tmp_path):
    from kinetoscope.training import checkpoint

    run = tmp_path / "run"
    result = run_cli("train", "dit", "--preset", "debug", "--masks", "suffix=1, none=0", "--steps", 1, "--run-dir", run,
                     "--workers", 1, "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    masks = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(run))["config"]["masks"]
    assert masks["suffix"] == 1.0 and masks["none"] == 0.0 and masks["first"] == 0.15  # unnamed kinds keep the preset's


def test_cli_trains_with_the_size_attention_patches_and_times_asked(run_cli, tmp_path):
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline
    from kinetoscope.training import checkpoint

    run = tmp_path / "run"
    result = run_cli("train", "dit", "--preset", "debug", "--text-conditioning", "joint", "--patch-size", "1,1,1",
                     "--width", 96, "--depth", 3, "--heads", 4, "--decoded-weight", 2, "--decoded-max-t", 1, "--decoded-clips", 1,
                     "--logit-mean", 0.5, "--logit-std", 0.8, "--binding-weight", 1, "--binding-attributes", "speed,direction",
                     "--steps", 1, "--run-dir", run, "--workers", 1, "--threads", 1, "--no-progress", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    exported = json.loads((run / "final" / "transformer" / "config.json").read_text())
    assert exported["text_conditioning"] == "joint" and exported["patch_size"] == [1, 1, 1]
    assert (exported["width"], exported["depth"], exported["heads"]) == (96, 3, 4)
    config = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(run))["config"]
    assert (config["logit_mean"], config["logit_std"]) == (0.5, 0.8)
    assert (config["decoded_weight"], config["decoded_max_t"], config["decoded_clips"]) == (2.0, 1.0, 1)
    assert (config["binding_weight"], tuple(config["binding_attributes"])) == (1.0, ("speed", "direction"))
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["decoded"] > 0 for r in logged if "seconds" in r] == [True]  # every clip has t < 1: one decoded
    # One token per latent value: the exported model generates at 64 x 64 (8 x 8 latents, 5 frames -> 320 tokens).
    out = KinetoscopePipeline.from_pretrained(run / "final")("a red circle", num_frames=16, height=64, width=64,
                                                              num_inference_steps=2, output_type="np")  # fmt: skip
    assert out.frames[0].shape == (16, 64, 64, 3)


def test_gradient_checkpointing_trains_the_same_model(tmp_path):
    torch.set_num_threads(1)
    plain = train_dit(_config(steps=6), _buckets(), tmp_path / "plain", progress=False)
    recomputed = train_dit(_config(steps=6, gradient_checkpointing=True), _buckets(), tmp_path / "ckpt", progress=False)
    assert recomputed.denoiser.transformer.gradient_checkpointing and not plain.denoiser.transformer.gradient_checkpointing
    torch.testing.assert_close(torch.tensor(recomputed.losses), torch.tensor(plain.losses), rtol=1e-5, atol=1e-6)
    for key, value in plain.denoiser.state_dict().items():
        torch.testing.assert_close(recomputed.denoiser.state_dict()[key], value, rtol=1e-4, atol=1e-6, msg=key)

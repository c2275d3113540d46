"""``kinetoscope train vae``: train the causal video VAE on the mixed clip stream, then export it.

A ``train`` group with one subcommand per model (``dit`` lives in ``train_dit``). Runs resume on their
own: a run folder that holds a checkpoint continues from its newest one. Ctrl-C or SIGTERM
finishes the current step and saves a checkpoint before exiting (status 130).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from kinetoscope.cli import train_dit
from kinetoscope.cli.train_arguments import add_precision_argument

# The shipped model's preset and the CPU recipe; `--preset tiny` is for smoke tests.
_PRESETS = ("default", "tiny")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` group and its ``vae`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a model (vae, dit)",
        description="Train one of kinetoscope's models. Runs checkpoint periodically and resume on their own.",
    )
    models = parser.add_subparsers(dest="model_kind", metavar="MODEL", parser_class=type(parser))
    models.required = True
    vae = models.add_parser(
        "vae",
        help="train the causal 3D VAE on Shapes World clips, photo camera moves and test patterns",
        description="Train the causal video VAE on a mix of Shapes World clips, pans and zooms over bundled "
        "photos, and lavfi test patterns (images and videos, 1 + 4k frames). At the end the per-channel "
        "latent mean/std are measured and the model is exported with save_pretrained.",
    )
    vae.add_argument("--run-dir", type=Path, default=Path("runs/vae"), help="folder for checkpoints and log.jsonl (default: runs/vae)")
    vae.add_argument(
        "--preset", choices=_PRESETS, default="default",
        help="model size (default: default, the shipped model; with --init-from, that VAE's architecture instead)",
    )
    vae.add_argument(
        "--steps", type=int, default=8000, help="total optimizer steps of the run (default: 8000, ~1 h on 2 idle CPU cores)"
    )
    vae.add_argument(
        "--batch-size",
        type=int,
        default=4,
        help="clips per batch at 17x64x64; other sizes get as many clips as cost the same compute (default: 4)",
    )
    vae.add_argument(
        "--clip-size",
        action="append",
        metavar="TxHxW",
        help="train on this clip size only, e.g. 17x64x64 (repeat for several, equally weighted; "
        "default: the built-in mix, mostly 17x64x64 with images, 64x112, 112x64, 32x32 and 128x128)",
    )
    vae.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW (default: 1e-3)")
    vae.add_argument("--warmup-steps", type=int, default=100, help="linear warm-up steps before cosine decay (default: 100)")
    vae.add_argument("--kl-weight", type=float, default=1e-6, help="weight of the KL term per latent value (default: 1e-6)")
    vae.add_argument(
        "--edge-weight", type=float, default=0.0,
        help="weight of an extra L1 over the 2-px band around the target's edges, where most Shapes World "
        "reconstruction error is (default: 0)",
    )
    vae.add_argument(
        "--latent-noise", type=float, default=0.0, metavar="S",
        help="decoder noise augmentation: the decoder sees latents plus Gaussian noise of up to S latent "
        "standard deviations (uniform per clip), for decoding a DiT's inexact latents (default: 0)",
    )
    vae.add_argument(
        "--scale-equivariance-weight", type=float, default=0.0, metavar="W",
        help="weight of a scale-equivariance term: the latent averaged over 2 x 2 positions must decode to the "
        "clip averaged over 2 x 2 pixels, which keeps the latent free of detail the pixels lack, for a DiT "
        "that learns it more easily (Skorokhodov et al. 2025; trains the encoder; default: 0, off)",
    )
    vae.add_argument(
        "--adversarial-weight", type=float, default=0.0, metavar="W",
        help="weight of an adversarial term: a patch discriminator trained beside the VAE judges frames real "
        "or reconstructed, penalising the blur L1 leaves at corners and edges (default: 0, off)",
    )
    vae.add_argument(
        "--adversarial-start", type=int, default=0, metavar="STEP",
        help="step from which the decoder reads the adversarial term; the discriminator trains from the "
        "first (default: 0)",
    )
    vae.add_argument("--seed", type=int, default=0, help="seed of the data stream and initialisation (default: 0)")
    vae.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default: 250)")
    vae.add_argument("--keep-last", type=int, default=3, help="checkpoints kept in the run folder (default: 3)")
    vae.add_argument(
        "--stats-clips", type=int, default=256, help="clips encoded at the end for the latent mean/std (default: 256)"
    )
    vae.add_argument(
        "--init-from", type=Path, default=None,
        help="start a new run from this exported VAE's weights (same preset), e.g. to train the shipped one further",
    )
    vae.add_argument(
        "--latent-channels", type=int, default=None, metavar="N",
        help="latent channels (default: the preset's, 8); with --init-from a VAE of fewer, its latent is widened "
        "to N keeping everything it learnt (the new channels start unused), then trained",
    )
    vae.add_argument(
        "--spatial-compression", type=int, choices=(4, 8), default=None, metavar="S",
        help="pixels per latent position along each side: 8 (the preset's) or 4. At 4, --latent-channels 3 gives "
        "a ratio of 64 (54 on a 17-frame clip, whose first latent frame holds one frame); 4 channels give 48 only "
        "on long clips (41 on 17 frames). With --init-from a VAE at the other, it is refolded "
        "(vae/grow.py: every residual block kept, the latent's two convolutions fresh) and trained on",
    )
    vae.add_argument(
        "--encoder-layers", default=None, metavar="N,N,N",
        help="residual blocks per encoder stage, full resolution first (default: the preset's, 2,2,3, or "
        "--init-from's); with --init-from a VAE of fewer, the added blocks start as identities, so training "
        "begins where it was",
    )
    vae.add_argument(
        "--decoder-layers", default=None, metavar="N,N,N",
        help="residual blocks per decoder stage, full resolution first (default: the preset's, 3,2,3, or "
        "--init-from's); deepened like --encoder-layers",
    )
    vae.add_argument(
        "--decoder-only", action="store_true",
        help="with --init-from: train only the decoder, the encoder and latent statistics frozen, so latents "
        "(and a DiT trained on them) stay valid while reconstructions sharpen",
    )
    vae.add_argument(
        "--encoder-only", action="store_true",
        help="with --init-from: train only the encoder, the decoder frozen, so latents learn to carry what "
        "the decoder can already draw (latent statistics are measured again; a DiT needs retraining)",
    )
    vae.add_argument("--shapes-weight", type=float, default=0.5, help="share of Shapes World clips (default: 0.5)")
    vae.add_argument("--photos-weight", type=float, default=0.4, help="share of camera moves over photos (default: 0.4)")
    vae.add_argument("--lavfi-weight", type=float, default=0.1, help="share of lavfi test patterns (default: 0.1)")
    vae.add_argument("--export", type=Path, default=None, help="folder for the final model (default: RUN_DIR/final)")
    vae.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ... (default: auto)")
    add_precision_argument(vae)
    vae.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (default: 0, torch's choice, one per core); use 1 when another busy job "
        "shares a 2-core CPU: two OpenMP threads then run 4-10x slower than one",
    )
    vae.add_argument(
        "--resume", action="store_true", help="require a checkpoint in RUN_DIR to continue (by default one is used when present)"
    )
    vae.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    vae.set_defaults(func=run_vae)
    train_dit.add_parser(models)


def _buckets(sizes: list[str] | None):
    """``["17x64x64", ...]`` as equally weighted buckets; None keeps the mix's default."""
    from kinetoscope.data.vae_mix import ClipBucket
    from kinetoscope.errors import KinetoscopeError

    if not sizes:
        return None
    buckets = []
    for size in sizes:
        try:
            t, h, w = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise KinetoscopeError(f"--clip-size {size}: expected FRAMESxHEIGHTxWIDTH, e.g. 17x64x64") from None
        buckets.append(ClipBucket(t, h, w, 1.0))
    return tuple(buckets)


def _layers(name: str, text: str) -> tuple[int, ...]:
    from kinetoscope.errors import KinetoscopeError

    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise KinetoscopeError(f"--{name.replace('_', '-')} {text}: expected block counts like 2,2,3") from None


def _config(args: argparse.Namespace):
    from kinetoscope.data.vae_mix import VAEMixConfig
    from kinetoscope.training.losses import LossConfig
    from kinetoscope.training.vae import VAETrainConfig
    from kinetoscope.vae.config import PRESETS

    weights = {"shapes_weight": args.shapes_weight, "photos_weight": args.photos_weight, "lavfi_weight": args.lavfi_weight}
    mix = VAEMixConfig(batch_size=args.batch_size, seed=args.seed, **weights)
    buckets = _buckets(args.clip_size)
    if buckets is not None:
        mix = VAEMixConfig(buckets=buckets, batch_size=args.batch_size, seed=args.seed, **weights)
    model = PRESETS[args.preset]()
    if args.init_from is not None:
        # Fine-tuning keeps the exported VAE's architecture; the options below only grow it. A
        # decoder-only run also keeps its latent statistics (its encoder is frozen), so resuming and
        # export carry them; any other run measures its own at export. Only config.json is read
        # here; train_vae loads the weights once.
        from kinetoscope import hub
        from kinetoscope.vae.config import CausalVAEConfig

        start = hub.load_config(CausalVAEConfig, args.init_from, class_name="CausalVideoVAE")
        model = start if args.decoder_only else replace(start, latents_mean=None, latents_std=None)
    if args.latent_channels is not None:
        model = replace(model, latent_channels=args.latent_channels, latents_mean=None, latents_std=None)
    if args.spatial_compression is not None:
        model = model.with_spatial_compression(args.spatial_compression)
    for name in ("encoder_layers", "decoder_layers"):
        if getattr(args, name) is not None:
            model = replace(model, **{name: _layers(name, getattr(args, name))})
    return VAETrainConfig(
        model=model,
        mix=mix,
        loss=LossConfig(kl_weight=args.kl_weight, edge_weight=args.edge_weight),
        steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        checkpoint_every=args.checkpoint_every,
        keep_last=args.keep_last,
        stats_clips=args.stats_clips,
        decoder_only=args.decoder_only,
        encoder_only=args.encoder_only,
        latent_noise=args.latent_noise,
        scale_equivariance_weight=args.scale_equivariance_weight,
        adversarial_weight=args.adversarial_weight,
        adversarial_start=args.adversarial_start,
        device=args.device,
        precision=args.precision,
    )


def run_vae(args: argparse.Namespace) -> int:
    """Train, measure the latent statistics, export; bad arguments raise KinetoscopeError."""
    from kinetoscope.errors import KinetoscopeError

    if args.run_dir.exists() and not args.run_dir.is_dir():
        raise KinetoscopeError(f"--run-dir {args.run_dir}: exists and is not a folder")
    export = args.export if args.export is not None else args.run_dir / "final"
    if export.exists() and not export.is_dir():
        raise KinetoscopeError(f"--export {export}: exists and is not a folder")
    try:
        import skimage  # noqa: F401  (the photos of the natural-video source)
    except ImportError:
        raise KinetoscopeError("train vae: needs scikit-image for its photo clips; pip install 'kinetoscope[train]'") from None
    if args.init_from is not None and not (args.init_from / "config.json").is_file():
        raise KinetoscopeError(f"--init-from {args.init_from}: not an exported VAE folder (no config.json)")
    if args.decoder_only and args.init_from is None:
        raise KinetoscopeError("--decoder-only: give --init-from, the exported VAE whose decoder to train")
    if args.encoder_only and args.init_from is None:
        raise KinetoscopeError("--encoder-only: give --init-from, the exported VAE whose encoder to train")
    if args.encoder_only and (args.latent_channels is not None or args.decoder_layers is not None):
        raise KinetoscopeError("--encoder-only: excludes --latent-channels and --decoder-layers (its decoder is frozen)")
    if args.latent_channels is not None and (args.latent_channels < 1 or args.decoder_only):
        raise KinetoscopeError(f"--latent-channels: must be at least 1 and excludes --decoder-only, got {args.latent_channels}")
    if args.spatial_compression is not None and (args.decoder_only or args.encoder_only):
        raise KinetoscopeError("--spatial-compression: changes the latent, so it excludes --decoder-only and --encoder-only")
    if args.encoder_layers is not None and args.decoder_only:
        raise KinetoscopeError("--encoder-layers: excludes --decoder-only (its encoder is frozen)")
    if args.stats_clips == 1:
        raise KinetoscopeError("--stats-clips: must be 0 (skip) or at least 2")
    try:
        config = _config(args)
    except ValueError as err:
        raise KinetoscopeError(f"train vae: {err}") from None

    import torch

    from kinetoscope.training import distributed
    from kinetoscope.training.run import resolve_device

    if args.threads < 0:
        raise KinetoscopeError(f"--threads: must be 0 (torch's choice) or positive, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    # One process, unless torchrun started several.
    return distributed.run_in_group(device, lambda world, device: _train_export(args, config, export, device, world))


def _train_export(args: argparse.Namespace, config, export, device, world) -> int:
    """The body of ``run_vae`` once the device (and the process group) are set: every process
    trains its share of each batch; rank 0 prints, measures the latent statistics and exports."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.training import checkpoint
    from kinetoscope.training.vae import ResumeMismatchError, finalize, train_vae

    if world.size > config.mix.batch_size:
        raise KinetoscopeError(f"--batch-size {config.mix.batch_size}: fewer clips than the {world.size} training processes")
    previous = checkpoint.latest_checkpoint(args.run_dir)
    if args.resume and previous is None:
        raise KinetoscopeError(f"--resume: {args.run_dir} holds no checkpoint to resume from")
    if previous is not None:
        world.say(f"resuming from {previous}")
    try:
        result = train_vae(config, args.run_dir, progress=not args.no_progress, init_from=args.init_from)
    except ResumeMismatchError as err:
        raise KinetoscopeError(str(err)) from None
    if not world.main:
        return 0
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a (nothing left to train)"
    print(f"trained to step {result.step} of {config.steps}; last loss {last}; {result.seconds_per_step:.2f} s/step on {device}")
    model = finalize(result.model, config, export)
    if config.stats_clips:
        means = ", ".join(f"{v:.3f}" for v in model.config.latents_mean)
        stds = ", ".join(f"{v:.3f}" for v in model.config.latents_std)
        print(f"latent mean per channel: {means}\nlatent std per channel: {stds}")
    print(f"exported to {export}")
    return 0

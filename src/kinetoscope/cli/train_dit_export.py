"""``kinetoscope train dit``'s exports: a trained run's EMA weights, with the VAE it trained on, as a
model folder (``--export``, default RUN_DIR/final), at the end of a run or at once with ``--export-now``."""

from __future__ import annotations

import argparse
from pathlib import Path


def save_model(args: argparse.Namespace, vae, denoiser, config) -> Path:
    """Write the VAE and the trained pair as a model folder at ``--export`` (default RUN_DIR/final)."""
    from kinetoscope.pipelines.text_to_video import KinetoscopePipeline, SamplingDefaults
    from kinetoscope.transformer.lora import has_lora, merge_lora, save_lora

    export = args.export or args.run_dir / "final"
    if has_lora(denoiser.transformer):  # the adapters alone, then folded into the exported model
        save_lora(denoiser.transformer, export / "lora")
        merge_lora(denoiser.transformer)
    pipe = KinetoscopePipeline(vae, denoiser.transformer, denoiser.text_encoder, SamplingDefaults(held_out=config.data.held_out))
    pipe.save_pretrained(export)
    return export


def vae_folder(vae: Path | None, init_from: Path | None) -> Path:
    """``--vae``; else the VAE inside the ``--init-from`` model folder, whose latents its transformer
    was trained on; else the shipped one."""
    from kinetoscope.pipelines.text_to_video import default_model_dir

    if vae is not None:
        return vae
    if init_from is not None and (init_from / "vae" / "config.json").is_file():
        return init_from / "vae"
    return default_model_dir() / "vae"


def vae_mismatch(source: Path, model_channels: int, vae_channels: int) -> str:
    return (f"{source}: the transformer reads {model_channels}-channel latents but this VAE makes {vae_channels}; "
            "pass --vae the VAE it was trained with")  # fmt: skip


def export_now(args: argparse.Namespace) -> int:
    """``--export-now``: the newest checkpoint's EMA weights as a model folder, no training."""
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.training.dit import load_run_ema
    from kinetoscope.vae.model import CausalVideoVAE

    if not args.run_dir.is_dir():
        raise KinetoscopeError(f"--run-dir {args.run_dir}: no such folder")
    try:
        denoiser, config, step = load_run_ema(args.run_dir)
    except ValueError as err:
        raise KinetoscopeError(str(err)) from None
    init_from = Path(config.init_from) if config.init_from else None
    folder = vae_folder(args.vae or (Path(config.vae) if config.vae else None), init_from)
    if not (folder / "config.json").is_file():
        raise KinetoscopeError(f"{args.run_dir}: trained on the VAE in {folder}, which is gone; pass --vae")
    vae = CausalVideoVAE.from_pretrained(folder)
    if config.model.in_channels != vae.latent_channels:
        raise KinetoscopeError(vae_mismatch(args.run_dir, config.model.in_channels, vae.latent_channels))
    export = save_model(args, vae, denoiser, config)
    print(f"exported the EMA weights of step {step} of {config.steps} to {export}")
    return 0

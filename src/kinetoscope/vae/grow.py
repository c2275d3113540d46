"""Grow a trained VAE, a wider latent or a deeper encoder or decoder, without losing what it has learnt.

Shapes World reconstructions showed the 8-channel latent dropping detail that no decoder
training brings back (a small square's corners decode as a disc), so the next step is more latent
channels; training a VAE from scratch for that costs hours. Widening keeps every trained weight:
the encoder's new posterior means start as a small random projection of its features, and the
decoder's first convolution gets zero weights for the new channels, so the widened model
reconstructs exactly as the old one did and fine-tuning only has to learn what to put in them.
(Both sides zero would leave the new channels without a gradient.)

Deepening adds residual blocks, which start as the identity (their last convolution is zero), so
the deeper model encodes and reconstructs exactly as before and training begins where it was. A
deeper decoder alone keeps the latent, and a DiT trained on it, valid (a decoder-only run).
Measured from the same start: widening 8 -> 12 channels gained nothing in 2,500 steps; a deeper
decoder alone (3, 2, 3) took the analyzer's all-correct on one-object reconstructions from 42% to
55% in 4,000; a deeper encoder (2, 2, 3) with it, both trained 10,000 steps, to 80%.

Refolding changes the spatial compression (8x to 4x: a stage transition stops folding 2 x 2
pixels into channels) and may change the latent channels; every residual block is kept, the
resampling projections keep what they did to a flat 2 x 2 patch, and only the latent's own two
convolutions start fresh. Measured against the same 4x, 4-channel VAE from scratch, on held-out
clips: 24.1 / 21.2 dB (Shapes World / photos) after 750 steps, against 20.3 / 18.7 after 1,200.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from einops import reduce, repeat

from kinetoscope.vae.model import CausalVideoVAE

# Scale of the new mean channels' random weights against the trained ones'. At 0.1 the new
# latents stayed near zero (std 0.2 against 2-7 for the trained channels after 2,500 steps), the
# decoder's gradient on them being proportional to their size; at 1 they start as large as the others.
_NEW_WEIGHT_SCALE = 1.0


def _copy_matching(source: CausalVideoVAE, target: CausalVideoVAE) -> None:
    """Copy every tensor of ``source`` into ``target`` where both have it with the same shape."""
    state = source.state_dict()
    for key, value in target.state_dict().items():
        if key in state and state[key].shape == value.shape:
            value.copy_(state[key])


@torch.no_grad()
def widen_latent(vae: CausalVideoVAE, latent_channels: int, generator: torch.Generator | None = None) -> CausalVideoVAE:
    """A copy of ``vae`` with ``latent_channels`` latent channels whose reconstruction equals ``vae``'s.

    The old channels keep their latent statistics; the new ones get mean 0 and std 1 until the
    statistics are measured again (they change anyway once the encoder trains).
    """
    old = vae.latent_channels
    if latent_channels <= old:
        raise ValueError(f"latent_channels must exceed the current {old}, got {latent_channels}")
    extra = latent_channels - old
    config = replace(
        vae.config,
        latent_channels=latent_channels,
        latents_mean=(*vae.config.latents_mean, *(0.0,) * extra),
        latents_std=(*vae.config.latents_std, *(1.0,) * extra),
    )
    wide = CausalVideoVAE(config).to(next(vae.parameters()).device)
    _copy_matching(vae, wide)

    # Encoder output "(2 l)": posterior means, then log-variances.
    source, target = vae.encoder.conv_out, wide.encoder.conv_out
    scale = _NEW_WEIGHT_SCALE * source.weight[:old].std()
    noise = torch.randn(target.weight[old:latent_channels].shape, generator=generator).to(target.weight) * scale
    target.weight[:old] = source.weight[:old]
    target.weight[old:latent_channels] = noise
    target.bias[:old] = source.bias[:old]
    target.bias[old:latent_channels] = 0.0
    target.weight[latent_channels : latent_channels + old] = source.weight[old:]
    target.bias[latent_channels : latent_channels + old] = source.bias[old:]
    # The new log-variances keep the fresh layer's initialisation (a nearly deterministic start).

    decoder_in = wide.decoder.conv_in
    decoder_in.weight.zero_()
    decoder_in.weight[:, :old] = vae.decoder.conv_in.weight
    decoder_in.bias.copy_(vae.decoder.conv_in.bias)
    return wide.train(vae.training)


def _grown(old: tuple[int, ...], new: tuple[int, ...] | None, name: str) -> tuple[int, ...]:
    if new is None:
        return old
    new = tuple(new)
    if len(new) != len(old) or any(n < o for n, o in zip(new, old, strict=True)):
        raise ValueError(f"{name} must keep {len(old)} stages of at least {old} blocks, got {new}")
    return new


@torch.no_grad()
def deepen(
    vae: CausalVideoVAE, *, encoder_layers: tuple[int, ...] | None = None, decoder_layers: tuple[int, ...] | None = None
) -> CausalVideoVAE:
    """A copy of ``vae`` with more residual blocks per stage, encoding and decoding as ``vae`` does.

    Each stage keeps its trained blocks first; the added ones follow them, as identities. A
    deeper decoder alone keeps the latent (a decoder-only run leaves a DiT valid); a deeper
    encoder starts from the same latent, which changes once the encoder trains.
    """
    config = replace(
        vae.config,
        encoder_layers=_grown(vae.config.encoder_layers, encoder_layers, "encoder_layers"),
        decoder_layers=_grown(vae.config.decoder_layers, decoder_layers, "decoder_layers"),
    )
    deep = CausalVideoVAE(config).to(next(vae.parameters()).device)
    missing, unexpected = deep.load_state_dict(vae.state_dict(), strict=False)
    # Only the added blocks may be new; their zero-initialised last convolutions make them identities.
    if unexpected or not all(key.startswith(("encoder.stages.", "decoder.stages.")) for key in missing):
        raise RuntimeError(f"deepening changed more than the residual blocks: {missing}, {unexpected}")
    return deep.train(vae.training)


@torch.no_grad()
def refold_spatial(
    vae: CausalVideoVAE, spatial_compression: int, latent_channels: int | None = None, seed: int = 0
) -> CausalVideoVAE:
    """A copy of ``vae`` at another spatial compression (and optionally latent width), for fine-tuning.

    A transition that stops folding space sums its encoder projection's weights over the 2 x 2
    sub-positions and averages its decoder projection's outputs over them (what each did to a flat
    2 x 2 patch); one that starts folding shares them out. The encoder's output and decoder's
    input convolutions keep their weights when the latent width stays, else start fresh (the
    initialisation of a new model built after ``torch.manual_seed(seed)``). It does not
    reconstruct as ``vae`` did: a short fine-tune has to adapt it.
    """
    channels = vae.latent_channels if latent_channels is None else latent_channels
    config = replace(
        vae.config.with_spatial_compression(spatial_compression), latent_channels=channels, latents_mean=None, latents_std=None
    )
    if (config.spatial_compression, channels) == (vae.spatial_compression, vae.latent_channels):
        raise ValueError(f"the VAE already has spatial compression {spatial_compression} and {channels} latent channels")
    with torch.random.fork_rng(devices=[]):  # the fresh layers' draw, without touching the global stream
        torch.manual_seed(seed)
        new = CausalVideoVAE(config).to(next(vae.parameters()).device)
    _copy_matching(vae, new)
    state, target = vae.state_dict(), new.state_dict()  # target's tensors are new's own: copy_ writes into it
    stages = len(config.spatial_downsample)
    for i, (was, now) in enumerate(zip(vae.config.spatial_downsample, config.spatial_downsample, strict=True)):
        if was == now:
            continue
        down = f"encoder.downsamplers.{i}.proj.weight"  # "o (c ft fh fw) 1 1 1"
        up = f"decoder.upsamplers.{stages - 1 - i}.proj"  # outputs "(c ft fh fw)"
        ft = 2 if config.temporal_downsample[i] else 1
        if was:  # stop folding 2 x 2 pixels
            target[down].copy_(reduce(state[down], "o (c ft fh fw) ... -> o (c ft) ...", "sum", ft=ft, fh=2, fw=2))
            for name in ("weight", "bias"):
                target[f"{up}.{name}"].copy_(reduce(state[f"{up}.{name}"], "(c ft fh fw) ... -> (c ft) ...", "mean", ft=ft, fh=2, fw=2))
        else:  # start folding: each sub-position gets a share (encoder) or a copy (decoder)
            target[down].copy_(repeat(state[down], "o (c ft) ... -> o (c ft fh fw) ...", ft=ft, fh=2, fw=2) / 4)
            for name in ("weight", "bias"):
                target[f"{up}.{name}"].copy_(repeat(state[f"{up}.{name}"], "(c ft) ... -> (c ft fh fw) ...", ft=ft, fh=2, fw=2))
    return new.train(vae.training)

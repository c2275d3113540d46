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
"""

from __future__ import annotations

from dataclasses import replace

import torch

from kinetoscope.vae.model import CausalVideoVAE

# Scale of the new mean channels' random weights against the trained ones'. At 0.1 the new
# latents stayed near zero (std 0.2 against 2-7 for the trained channels after 2,500 steps), the
# decoder's gradient on them being proportional to their size; at 1 they start as large as the others.
_NEW_WEIGHT_SCALE = 1.0


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
    state = vae.state_dict()
    for key, value in wide.state_dict().items():
        if key in state and state[key].shape == value.shape:
            value.copy_(state[key])

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

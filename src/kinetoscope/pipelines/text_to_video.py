"""Text-to-video (and images, a one-frame video): prompt -> text states -> sampled latents -> pixels.

Composes the parts and owns none of their logic: the prompt upsampler (Shapes World), the text
encoder, the diffusion transformer as a denoiser, guidance and given frames as wrappers
(:mod:`kinetoscope.diffusion`), a sampler, and the VAE decoder. Arguments follow diffusers'
video pipelines (``prompt, negative_prompt, num_frames, height, width, num_inference_steps,
guidance_scale, generator, output_type``); the output has ``.frames``.
"""

from __future__ import annotations

import json
import math
from functools import partial
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from kinetoscope.diffusion import cfg_denoiser, sample_euler, sample_euler_sde, sample_heun, sampling_timesteps, shift_for_tokens
from kinetoscope.diffusion.conditioning import sample_with_given
from kinetoscope.diffusion.self_condition import SelfCondition
from kinetoscope.errors import KinetoscopeError
from kinetoscope.pipelines.sampling_defaults import SamplingDefaults, check_sampling
from kinetoscope.patches import patch_grid
from kinetoscope.text import HFTextEncoder, TextEncoder, WordTextEncoder
from kinetoscope.transformer import DiffusionTransformer
from kinetoscope.vae.model import CausalVideoVAE

MODEL_INDEX = "model_index.json"


def default_model_dir() -> Path:
    """The folder of the model shipped inside the package."""
    return Path(str(files("kinetoscope") / "weights"))


@dataclass
class VideoPipelineOutput:
    """``frames``: one uint8 ``"t h w c"`` array per video (``output_type="np"``), or float
    ``"b c t h w"`` in [0, 1] (``"pt"``), or the normalised latents (``"latent"``);
    ``prompts``: the texts the model was conditioned on, after upsampling."""

    frames: list[np.ndarray] | torch.Tensor
    prompts: list[str]


class KinetoscopePipeline:
    """Generate videos from text with a VAE, a diffusion transformer and a text encoder.

    The text encoder is a :class:`~kinetoscope.text.WordTextEncoder` (trained with the
    transformer) or a frozen :class:`~kinetoscope.text.HFTextEncoder`; ``model_index.json``
    records which one ``text_encoder/`` holds.
    """

    def __init__(
        self,
        vae: CausalVideoVAE,
        transformer: DiffusionTransformer,
        text_encoder: TextEncoder,
        defaults: SamplingDefaults | None = None,
    ) -> None:
        if transformer.config.in_channels != vae.latent_channels:
            raise ValueError(
                f"transformer expects {transformer.config.in_channels} latent channels, the VAE gives {vae.latent_channels}"
            )
        if transformer.config.text_dim != text_encoder.dim:
            raise ValueError(f"transformer expects text width {transformer.config.text_dim}, encoder gives {text_encoder.dim}")
        self.vae = vae.eval()
        self.transformer = transformer.eval()
        self.text_encoder = text_encoder.eval() if isinstance(text_encoder, torch.nn.Module) else text_encoder
        self.defaults = defaults if defaults is not None else SamplingDefaults()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The transformer's weights' dtype (float32 unless moved with :meth:`to`)."""
        return next(self.transformer.parameters()).dtype

    def to(self, *args: str | torch.device | torch.dtype, device=None, dtype: torch.dtype | None = None) -> KinetoscopePipeline:
        """Move every component to a device and/or floating-point dtype, diffusers-style:
        ``pipe.to("cuda")``, ``pipe.to(torch.bfloat16)``, ``pipe.to("cuda", torch.bfloat16)``.
        Returns the pipeline. The sampler's state and the decoded frames stay float32 whatever the
        weights' dtype. On a CPU, bfloat16 is faster only where the CPU has bf16 matrix units (Intel
        AMX: 1.23x for sampling here) and many times slower elsewhere; ``benchmarks/precision.py``
        measures it."""
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        text = self.text_encoder.model if isinstance(self.text_encoder, HFTextEncoder) else self.text_encoder
        for module in (self.vae, self.transformer, text):
            module.to(device=device, dtype=dtype)
        return self

    def load_lora_weights(self, directory: str | Path, lora_scale: float = 1.0) -> KinetoscopePipeline:
        """Adapt the transformer with a LoRA adapter folder (``train dit --lora-rank`` writes one to
        ``EXPORT/lora``), fused into its weights at ``lora_scale`` (0: no change; 1: as trained):
        diffusers' ``load_lora_weights`` and ``fuse_lora`` in one. Returns the pipeline; a folder
        that is not an adapter for this transformer raises KinetoscopeError and changes nothing."""
        from kinetoscope.transformer.lora import load_lora

        load_lora(self.transformer, directory, lora_scale)
        return self

    @classmethod
    def from_pretrained(
        cls, directory: str | Path | None = None, device: str | torch.device = "cpu", torch_dtype: torch.dtype | None = None
    ) -> KinetoscopePipeline:
        """Load a pipeline folder (``model_index.json`` + ``vae/``, ``transformer/``, ``text_encoder/``)
        onto ``device``, its weights in ``torch_dtype`` (default: float32, as saved).

        ``None`` loads the model shipped with the package.
        """
        shipped = directory is None
        directory = Path(directory) if directory is not None else default_model_dir()
        index_path = directory / MODEL_INDEX
        if not index_path.is_file() and shipped:
            raise KinetoscopeError(
                f"the shipped model is missing from {directory} (an incomplete install?); reinstall "
                "kinetoscope, or train one with 'kinetoscope train dit --run-dir runs/dit' and pass --model runs/dit/final"
            )
        if not index_path.is_file():
            raise KinetoscopeError(f"{directory}: not a kinetoscope model folder (no {MODEL_INDEX})")
        try:
            index = json.loads(index_path.read_text())
            defaults = SamplingDefaults(**index.get("defaults", {}))
        except (ValueError, TypeError) as err:
            raise KinetoscopeError(f"{index_path}: unreadable ({err})") from None
        # Folders from before frozen encoders hold the word encoder and do not say so.
        text_class = index.get("text_encoder_class", WordTextEncoder.__name__)
        if text_class not in (WordTextEncoder.__name__, HFTextEncoder.__name__):
            raise KinetoscopeError(f"{index_path}: unknown text_encoder_class {text_class!r}")
        vae = CausalVideoVAE.from_pretrained(directory / index.get("vae", "vae"), device=device)
        transformer = DiffusionTransformer.from_pretrained(directory / index.get("transformer", "transformer"), device=device)
        text_dir = directory / index.get("text_encoder", "text_encoder")
        if text_class == HFTextEncoder.__name__:
            text_encoder = HFTextEncoder.from_pretrained(text_dir, device=device)
        else:
            text_encoder = WordTextEncoder.from_pretrained(text_dir, device=device)
        pipe = cls(vae, transformer, text_encoder, defaults)
        return pipe if torch_dtype is None else pipe.to(dtype=torch_dtype)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write all components and ``model_index.json`` into ``directory``; a frozen encoder's
        model and tokenizer are copied too, so the folder stands alone."""
        directory = Path(directory)
        self.vae.save_pretrained(directory / "vae")
        self.transformer.save_pretrained(directory / "transformer")
        self.text_encoder.save_pretrained(directory / "text_encoder")
        index = {
            "_class_name": type(self).__name__,
            "vae": "vae",
            "transformer": "transformer",
            "text_encoder": "text_encoder",
            "text_encoder_class": type(self.text_encoder).__name__,
            "defaults": asdict(self.defaults),
        }
        (directory / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")
        return directory

    def prepare_prompts(self, prompt: str | Sequence[str], upsample: bool, seed: int) -> list[str]:
        """The prompts as the text encoder will read them (canonical captions when upsampling)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not upsample:
            return prompts
        from kinetoscope.shapes.prompts import upsample_prompt

        return [upsample_prompt(p, seed=seed + i) for i, p in enumerate(prompts)]

    def check_inputs(
        self, num_frames: int, height: int, width: int, num_inference_steps: int, guidance_scale: float, sampler: str,
        guidance_rescale: float = 0.0, shift: float | None = None, eta: float = 0.0,
        guidance_interval: tuple[float, float] | None = None, contrast_scale: float = 0.0,
        contrast_interval: tuple[float, float] | None = None,
    ) -> None:
        """Raise ValueError naming the first bad argument."""
        s = self.vae.spatial_compression * self.transformer.config.patch_size[1]
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        for name, side in (("height", height), ("width", width)):
            if not isinstance(side, int) or side < s or side % self.vae.spatial_compression:
                raise ValueError(f"{name} must be a multiple of {self.vae.spatial_compression}, at least {s}; got {side}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        if not guidance_scale >= 0:
            raise ValueError(f"guidance_scale must be 0 or more, got {guidance_scale}")
        check_sampling(sampler, guidance_rescale, shift, eta, guidance_interval, contrast_scale, contrast_interval)

    def prepare_contrasts(self, prompts: list[str], contrast_prompt: str | Sequence[str | None] | None) -> list[str] | None:
        """The captions each prompt's video must not match in motion, or None where no prompt has one.

        Given ``contrast_prompt`` (one, or one per prompt, None for none), those; else, for a model
        that reads canonical captions (``upsample_prompts``), each prompt that is one (upsampled
        here or by a given-frame pipeline) with its motion reversed or exchanged
        (:func:`~kinetoscope.shapes.prompts.motion_contrast_caption`). A prompt without a contrast
        is its own, which adds nothing to its guidance.
        """
        if contrast_prompt is None:
            if not self.defaults.upsample_prompts:
                return None
            from kinetoscope.shapes.prompts import motion_contrast_caption

            contrasts = [motion_contrast_caption(p) for p in prompts]
        else:
            contrasts = [contrast_prompt] * len(prompts) if isinstance(contrast_prompt, str) else list(contrast_prompt)
            if len(contrasts) != len(prompts):
                raise ValueError(f"got {len(contrasts)} contrast prompts for {len(prompts)} prompts")
        if all(c is None for c in contrasts):
            return None
        return [p if c is None else c for p, c in zip(prompts, contrasts)]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        negative_prompt: str | Sequence[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_rescale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        shift: float | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        sampler: str | None = None,
        eta: float | None = None,
        upsample_prompt: bool | None = None,
        contrast_prompt: str | Sequence[str | None] | None = None,
        contrast_scale: float | None = None,
        contrast_interval: tuple[float, float] | None = None,
        given_latents: torch.Tensor | None = None,
        given_mask: torch.Tensor | None = None,
        release_mask: torch.Tensor | None = None,
        strength: float = 1.0,
        output_type: str = "np",
        progress: bool = False,
    ) -> VideoPipelineOutput:
        """Sample one video per prompt.

        ``generator`` (or else ``seed``) fixes the noise; the same seed gives the same video.
        ``guidance_interval`` ``(lo, hi)`` guides only the steps whose time is in ``[lo, hi]``
        (default: the model's; ``(0, 1)`` guides every step).
        ``shift`` is the sampling schedule's timestep shift (default: the model's, else by token count).
        ``eta`` is the share of noise the ``"sde"`` sampler redraws per step (default: the model's).
        ``contrast_scale`` weighs contrastive guidance away from ``contrast_prompt`` (default: the
        model's; the shipped one: see ``SamplingDefaults``) at the steps whose time is in
        ``contrast_interval``; without ``contrast_prompt``, canonical captions (upsampled prompts)
        are contrasted with their motion reversed (one object) or exchanged between the objects
        (see :meth:`prepare_contrasts`); images (``num_frames=1``) are never contrasted.
        ``given_latents`` ``"b c t h w"`` (normalised) with ``given_mask`` ``"b 1 t 1 1"`` holds
        latent frames fixed (image-to-video, extension; see :mod:`kinetoscope.pipelines.conditioning`).
        ``release_mask`` (same layout) marks latent frames that start from ``given_latents`` but
        are released at ``t = strength``: noised to it and sampled from there (SDEdit when it
        covers every frame; see :func:`~kinetoscope.diffusion.conditioning.sample_with_given`).
        ``output_type="latent"`` returns the latents on the transformer's patch grid, which covers
        more than ``height x width`` where that is not a whole number of patches.
        """
        (
            num_frames, height, width, steps, scale, rescale, interval, shift, sampler, eta, upsample, contrast_scale,
            contrast_interval,
        ) = self.defaults.resolve(
            num_frames=num_frames,
            height=height,
            width=width,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            guidance_rescale=guidance_rescale,
            guidance_interval=guidance_interval,
            shift=shift,
            sampler=sampler,
            eta=eta,
            upsample_prompts=upsample_prompt,
            contrast_scale=contrast_scale,
            contrast_interval=contrast_interval,
        ).values()  # fmt: skip
        self.check_inputs(
            num_frames, height, width, steps, scale, sampler, rescale, shift, eta, interval, contrast_scale, contrast_interval
        )  # fmt: skip
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        if given_latents is None and (given_mask is not None or release_mask is not None):
            raise ValueError("given_mask and release_mask need given_latents")
        if given_latents is not None and given_mask is None and release_mask is None:
            raise ValueError("given_latents needs given_mask or release_mask")
        prompts = self.prepare_prompts(prompt, upsample, seed)
        negatives = [""] * len(prompts) if negative_prompt is None else (
            [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
        )  # fmt: skip
        if len(negatives) != len(prompts):
            raise ValueError(f"got {len(negatives)} negative prompts for {len(prompts)} prompts")
        device = self.device
        cond = self.text_encoder.encode(prompts, device)
        uncond = self.text_encoder.encode(negatives, device)
        # An image has no motion to contrast (and the contrast only moves it off the prompt's image).
        moving = contrast_scale > 0 and num_frames > 1
        contrast_captions = self.prepare_contrasts(prompts, contrast_prompt) if moving else None
        contrasts = []
        if contrast_captions is not None:
            contrast = self.text_encoder.encode(contrast_captions, device)
            contrasts.append(({"text": contrast.hidden, "text_mask": contrast.mask}, contrast_scale))
        shape = (len(prompts), *self.vae.latent_shape(num_frames, height, width))
        # A latent grid that the patches do not tile (72 pixels: 9 latent rows, 2-row patches) is
        # sampled one patch larger at the bottom and right and cropped after decoding, as the VAE
        # pads frames; given latents are extended there by their edge values.
        pad_h, pad_w = (-side % p for side, p in zip(shape[-2:], self.transformer.config.patch_size[1:]))
        shape = (*shape[:-2], shape[-2] + pad_h, shape[-1] + pad_w)
        if given_latents is not None and (pad_h or pad_w):
            given_latents = F.pad(given_latents, (0, pad_w, 0, pad_h, 0, 0), mode="replicate")
        if generator is None:
            generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(shape, generator=generator, device=generator.device).to(device)
        # A self-conditioned transformer reads the previous step's clean estimate (None at the first).
        carried = SelfCondition() if self.transformer.config.self_condition else None
        denoiser = cfg_denoiser(
            self._velocity if carried is None else carried.model(self._velocity),
            {"text": cond.hidden, "text_mask": cond.mask},
            {"text": uncond.hidden, "text_mask": uncond.mask},
            scale,
            rescale,
            interval,
            contrasts,
            contrast_interval,
        )
        if carried is not None:
            denoiser = carried.denoiser(denoiser)
        tokens = math.prod(patch_grid(shape[2:], self.transformer.config.patch_size))
        timesteps = sampling_timesteps(steps, shift_for_tokens(tokens) if shift is None else shift, device=device)
        # The sde sampler draws from the generator that drew the noise: one seed fixes the whole video.
        sample = {"euler": sample_euler, "heun": sample_heun, "sde": partial(sample_euler_sde, eta=eta, generator=generator)}[sampler]
        if given_latents is None:
            latents = sample(denoiser, noise, timesteps, progress=progress)
        else:
            masks = [m if m is None else m.to(device) for m in (given_mask, release_mask)]
            latents = sample_with_given(
                sample, denoiser, noise, timesteps, given_latents.to(device), *masks, strength=strength, progress=progress
            )
        if output_type == "latent":
            return VideoPipelineOutput(latents, prompts)
        video = self.decode(latents, num_frames, height, width)
        if output_type == "pt":
            return VideoPipelineOutput(video, prompts)
        return VideoPipelineOutput(list(self.to_frames(video)), prompts)

    def _velocity(
        self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
        self_condition: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        # The transformer reads and writes its weights' dtype; the sampler integrates in x's (float32).
        dtype = self.dtype
        estimate = None if self_condition is None else self_condition.to(dtype)
        return self.transformer(x.to(dtype), t, text.to(dtype), text_mask, self_condition=estimate).to(x.dtype)

    @torch.no_grad()  # inference only: a graph through the VAE would hold every activation
    def decode(self, latents: torch.Tensor, num_frames: int, height: int, width: int) -> torch.Tensor:
        """Normalised latents to pixels ``"b c t h w"`` in [0, 1], cropped to ``height x width`` from
        the top left (the latents may cover more: see ``__call__``)."""
        vae_dtype = next(self.vae.parameters()).dtype
        video = self.vae.decode(self.vae.denormalize(latents.to(vae_dtype)), num_frames)[..., :height, :width]
        return ((video.clamp(-1, 1) + 1) / 2).float()

    @staticmethod
    def to_frames(video: torch.Tensor) -> np.ndarray:
        """Pixels ``"b c t h w"`` in [0, 1] (``decode``'s output) to uint8 ``"b t h w c"``."""
        return rearrange((video * 255).round().to(torch.uint8), "b c t h w -> b t h w c").cpu().numpy()

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``"t h w c"`` frames to normalised latents ``"1 c t h w"`` (posterior mode)."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = rearrange(x, "t h w c -> 1 c t h w").float() / 127.5 - 1
        x = x.to(next(self.vae.parameters()).dtype)
        return self.vae.normalize(self.vae.encode(x).mode()).float()  # sampled in float32, as noise is

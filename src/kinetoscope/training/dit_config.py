"""The configuration of a DiT training run (:func:`~kinetoscope.training.dit.train_dit`): its
defaults are the CPU recipe of the shipped model, each choice with the measurement behind it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from kinetoscope.data.shapes_latents import ShapesLatentsConfig
from kinetoscope.shapes.swaps import EXCHANGEABLE
from kinetoscope.text import WordTextEncoderConfig
from kinetoscope.training.frame_masks import FrameMaskConfig
from kinetoscope.training.run import PRECISIONS
from kinetoscope.transformer import DiTConfig


def _default_model() -> DiTConfig:
    # 8 latent channels: the shipped VAE's; 128-wide text: the word encoder's. Joint attention
    # over [text; video]: with cross-attention (and pooled text) a DiT never learnt which way a
    # prompt's object moves (benchmarks/motion_words.py: reversed-direction gap 0.0000 against
    # 0.0089; on the Shapes World one-object direction 11% for the cross-attention model at step
    # 8,000, 44% for the joint one shipped at 9,600). Text keys sit at RoPE's origin, so what a
    # video token reads from the text depends on where and when the token is: motion words can
    # say where to move.
    return DiTConfig(in_channels=8, text_dim=128, pooled_text=True, text_conditioning="joint")


def _default_data() -> ShapesLatentsConfig:
    # 80% of the clips have every object go 15 frames unbounced (the rest keep the spec's uniform
    # starts, so bounces are still seen): "moves left" then means leftward motion for the whole clip.
    # Measured (eval t2v --per-group 32, same recipe otherwise): one-object direction 63% against
    # 30%, all-correct 24% against 8%.
    return ShapesLatentsConfig(min_straight_frames=15, straight_fraction=0.8)


@dataclass
class DiTTrainConfig:
    """A DiT training run; the defaults are the CPU recipe of the shipped model."""

    model: DiTConfig = field(default_factory=_default_model)
    text: WordTextEncoderConfig = field(default_factory=WordTextEncoderConfig)
    # "word": train the word encoder (``text``) with the transformer. Otherwise a local
    # transformers folder read frozen: model.text_dim must be its hidden size, ``text`` goes unused.
    text_encoder: str = "word"
    data: ShapesLatentsConfig = field(default_factory=_default_data)
    masks: FrameMaskConfig = field(default_factory=FrameMaskConfig)
    steps: int = 9600  # the shipped model's: 2.3 h of steps on 2 CPU cores
    # Tokens per batch, whatever the bucket: 32 clips of 16 x 64 x 64 (80 tokens each).
    tokens_per_batch: int = 2560
    lr: float = 5e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 300
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # Classifier-free guidance needs an unconditional model: this share of captions is emptied.
    caption_dropout: float = 0.1
    # Extra loss weight where the clean latent changes between frames (diffusion.motion_weights):
    # without it, direction words went unlearnt. 0 = plain MSE.
    motion_weight: float = 4.0
    # Extra loss weight over the latent cells an object asked to stay still covers (from the clips'
    # scene records; training.grounding.Grounder.still_cover): motion_weight leaves a still object at
    # the background's weight, so drawing it moving costs little. 0 = off. Measured (docs/experiments-dit.md, Direction):
    # still objects keep still more, and so do the moving objects beside them; not shipped.
    still_weight: float = 0.0
    # Two-object clips (by the clips' scene records) are drawn this many times as often as one-object
    # clips; 1 = every clip alike. Binding each motion word to its own object is learnt from them alone;
    # measured (docs/experiments-dit.md, Direction): 9 in a 1,200-step fine-tune left two-object direction as it was.
    two_object_weight: float = 1.0
    # Pixel MSE of the decoded one-step prediction on up to ``decoded_clips`` clips per step with
    # t < ``decoded_max_t`` (training.decoded_loss), weighted so; 0 = off (it needs the VAE).
    decoded_weight: float = 0.0
    decoded_max_t: float = 0.3
    decoded_clips: int = 4
    # The ranking loss of training.binding (two-object clips: the caption against the same with
    # ``binding_attributes`` exchanged between the objects), weighted so, at times from
    # ``binding_min_t``; 0 = off.
    binding_weight: float = 0.0
    binding_temperature: float = 0.01
    binding_min_t: float = 0.5
    binding_attributes: tuple[str, ...] = ("direction",)
    # The attention grounding loss of training.grounding (two-object clips: each object's video
    # tokens split their reading of the two object phrases toward their own), weighted so; 0 = off.
    # Needs the word text encoder (its tokens are the caption's words) and the latents' VAE.
    grounding_weight: float = 0.0
    logit_mean: float = 0.0
    logit_std: float = 1.0
    checkpoint_every: int = 200
    # Validation: the EMA weights' loss on clips drawn from another seed (a curated cache: whole
    # sources held out of its largest bucket), every ``val_every`` steps
    # (0: never). Training clips repeat (~18 times each in the shipped recipe), so the training
    # loss also falls by memorising them; this one does not. ~3 s per 256 clips on 2 CPU cores.
    val_every: int = 400
    val_clips: int = 256
    keep_last: int = 2
    seed: int = 0
    device: str = "auto"
    # With several processes (torchrun), shard the weights, gradients, optimizer state and EMA
    # over them (FSDP) instead of keeping a whole copy in each (DDP): for models too large to
    # replicate. The same training either way; checkpoints are interchangeable.
    fsdp: bool = False
    # Recompute each transformer block's activations in the backward pass instead of keeping them:
    # activation memory for about a third more compute per step (transformer.enable_gradient_checkpointing).
    gradient_checkpointing: bool = False
    # Compile the transformer with torch.compile (TorchInductor: fused kernels; on a CPU it needs a
    # C++ compiler). The same training to float tolerance; each bucket's first step pays the
    # compilation (~1 minute for the shipped model on this CPU the first time), every later one
    # runs 1.17x faster here, 1.54x under bf16 autocast (benchmarks/compile.py).
    compile: bool = False
    precision: str = "auto"  # training.run.PRECISIONS: bf16 autocast on CUDA only, unless "bf16" or "fp32"
    # A model folder (``transformer/``, ``text_encoder/``) whose weights start the run instead of
    # a random initialisation: a fine-tune. Its configs must be ``model`` and ``text``.
    init_from: str | None = None
    # LoRA (transformer.lora): train rank-``lora_rank`` adapters beside the block projections of the
    # ``init_from`` model, everything else frozen (its text encoder too); 0 = train every weight.
    lora_rank: int = 0
    lora_alpha: float | None = None  # the adapters' scale is alpha / rank; None: alpha = rank
    # The VAE folder ``train dit --vae`` named (None: the shipped VAE, or the one inside ``init_from``):
    # kept so that exporting a checkpoint later (``--export-now``) pairs it with the latents it learnt.
    vae: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = DiTConfig(**self.model)
        if isinstance(self.text, dict):
            self.text = WordTextEncoderConfig(**self.text)
        if isinstance(self.data, dict):
            self.data = ShapesLatentsConfig(**self.data)
        if isinstance(self.masks, dict):
            self.masks = FrameMaskConfig(**self.masks)
        self.text_encoder = str(self.text_encoder)  # a Path would never equal the checkpoint's string
        for name in ("init_from", "vae"):
            if getattr(self, name) is not None:
                setattr(self, name, str(getattr(self, name)))
        for name in ("steps", "tokens_per_batch", "checkpoint_every", "keep_last", "val_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.caption_dropout < 1 or not 0 <= self.ema_decay < 1 or not self.lr > 0:
            raise ValueError(
                f"need 0 <= caption_dropout < 1, 0 <= ema_decay < 1 and lr > 0; got "
                f"{self.caption_dropout}, {self.ema_decay}, {self.lr}"
            )
        if not self.logit_std > 0 or not math.isfinite(self.logit_mean):
            raise ValueError(f"need logit_std > 0 and a finite logit_mean, got {self.logit_std}, {self.logit_mean}")
        if self.val_every < 0:
            raise ValueError(f"val_every must be 0 (no validation) or more, got {self.val_every}")
        if not self.decoded_weight >= 0 or not 0 < self.decoded_max_t <= 1 or self.decoded_clips < 1:
            raise ValueError(
                f"need decoded_weight >= 0, 0 < decoded_max_t <= 1 and decoded_clips >= 1; got "
                f"{self.decoded_weight}, {self.decoded_max_t}, {self.decoded_clips}"
            )
        if not self.binding_weight >= 0 or not self.binding_temperature > 0 or not 0 <= self.binding_min_t < 1:
            raise ValueError(
                f"need binding_weight >= 0, binding_temperature > 0 and 0 <= binding_min_t < 1; got "
                f"{self.binding_weight}, {self.binding_temperature}, {self.binding_min_t}"
            )
        self.binding_attributes = tuple(self.binding_attributes)
        if not self.grounding_weight >= 0:
            raise ValueError(f"grounding_weight must be 0 or more, got {self.grounding_weight}")
        if self.grounding_weight > 0 and self.text_encoder != "word":
            raise ValueError("grounding_weight needs the word text encoder (its tokens are the caption's words)")
        if not self.binding_attributes or not set(self.binding_attributes) <= set(EXCHANGEABLE):
            raise ValueError(
                f"binding_attributes must name some of {', '.join(EXCHANGEABLE)}; got {', '.join(self.binding_attributes) or 'none'}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.lora_rank < 0 or (self.lora_rank and self.init_from is None):
            raise ValueError(f"lora_rank must be 0 (off) or adapt an init_from model; got {self.lora_rank} without one")
        if self.lora_alpha is not None and not (self.lora_rank and self.lora_alpha > 0):
            raise ValueError(f"lora_alpha needs a lora_rank and must be above 0; got {self.lora_alpha} at rank {self.lora_rank}")
        if not self.motion_weight >= 0:
            raise ValueError(f"motion_weight must be 0 or more, got {self.motion_weight}")
        if not self.still_weight >= 0:
            raise ValueError(f"still_weight must be 0 or more, got {self.still_weight}")
        if not self.two_object_weight > 0:
            raise ValueError(f"two_object_weight must be above 0, got {self.two_object_weight}")
        if self.text_encoder == "word" and self.model.text_dim != self.text.width:
            raise ValueError(f"model.text_dim {self.model.text_dim} must equal text.width {self.text.width}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

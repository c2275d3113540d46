"""Training the diffusion transformer (and the word text encoder with it) on cached latents.

The text encoder is either the small word encoder, trained jointly, or a frozen pretrained one
(T5, CLIP, a sentence-transformer's BERT) from a local folder, whose per-token states are
computed once per distinct caption and kept on the device (:class:`~kinetoscope.training.caption_cache.CaptionCache`).

What one step computes (the batch, its masks and dropped captions, the loss) is
:mod:`~kinetoscope.training.dit_step`; this is the loop around it: AdamW with warm-up and cosine
decay, gradient clipping, and an exponential moving average of the weights, which is what gets
exported. A checkpoint holds everything to continue bit-exactly: weights,
EMA, optimizer, step and random states.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from kinetoscope.data.latent_cache import LatentBucket
from kinetoscope.text import HFTextEncoder, WordTextEncoder, WordTextEncoderConfig
from kinetoscope.training import checkpoint, distributed
from kinetoscope.training.caption_cache import CaptionCache
from kinetoscope.training.denoiser import Denoiser, adapt, build_denoiser, load_initial_weights
from kinetoscope.training.distributed import current, data_parallel, gathered
from kinetoscope.training.dit_config import DiTTrainConfig
from kinetoscope.training.dit_step import clip_weights, diffusion_loss, draw_batch, tokens_per_clip, validation_loss
from kinetoscope.training.ema import EMA
from kinetoscope.training.grounding import Grounder
from kinetoscope.training.run import (
    LOG_NAME,
    StopSignals,
    autocast,
    compile_transformer,
    resolve_device,
    trim_log,
    warmup_cosine,
)
from kinetoscope.vae.model import CausalVideoVAE

# With --compile, captions are padded to a multiple of this many tokens: the shipped recipe's batch
# maxima (25-29 word tokens) all become 32, so each bucket compiles once instead of once per length.
TEXT_MULTIPLE_COMPILED = 8


def learning_rate(config: DiTTrainConfig, step: int) -> float:
    """The run's learning rate at ``step`` (:func:`~kinetoscope.training.run.warmup_cosine`)."""
    return warmup_cosine(
        step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.steps, min_lr_ratio=config.min_lr_ratio
    )


@dataclass
class DiTTrainResult:
    denoiser: Denoiser
    ema: EMA
    step: int
    losses: list[float]
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    config: DiTTrainConfig | None = None


def train_dit(
    config: DiTTrainConfig,
    buckets: list[LatentBucket],
    run_dir: str | Path,
    *,
    resume: bool = True,
    stop_at: int | None = None,
    progress: bool = True,
    weights: Sequence[float] | None = None,
    validation: LatentBucket | None = None,
    vae: CausalVideoVAE | None = None,
) -> DiTTrainResult:
    """Train (or continue) in ``run_dir`` up to ``config.steps``; ``stop_at`` ends early with a checkpoint.

    ``buckets`` are the cached latents, in the order of ``config.data.buckets`` (their weights
    pick each step's bucket), or any buckets (a curated cache) with their own ``weights``.
    With ``validation`` clips, the EMA weights' :func:`validation_loss` on them is logged
    (``{"step", "val_loss"}`` lines) every ``config.val_every`` steps and at the end, and for a
    fine-tune (``config.init_from``) at step 0 too. ``vae`` (frozen; the latents' own) is needed
    only for ``config.decoded_weight``, ``config.grounding_weight`` and ``config.still_weight``.
    Ctrl-C or SIGTERM finishes the step, saves, and raises KeyboardInterrupt.

    In a process group (torchrun; :mod:`~kinetoscope.training.distributed`) each process trains
    on its share of every batch and only rank 0 writes the checkpoints and the log.
    """
    if weights is None:
        if len(buckets) != len(config.data.buckets):
            raise ValueError(f"got {len(buckets)} latent buckets for {len(config.data.buckets)} configured")
        weights = [b.weight for b in config.data.buckets]
    elif len(weights) != len(buckets) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per bucket, not all zero; got {list(weights)} for {len(buckets)}")
    world = current()
    for bucket in buckets:
        if max(1, config.tokens_per_batch // tokens_per_clip(bucket.shape, config.model.patch_size)) < world.size:
            raise ValueError(
                f"a batch of latents {tuple(bucket.shape)} holds fewer clips than the {world.size} training processes; "
                "raise tokens_per_batch"
            )
    for extra in ("decoded_weight", "binding_weight", "grounding_weight"):  # extra terms computed on the whole batch
        if world.size > 1 and getattr(config, extra) > 0:
            raise ValueError(f"{extra} trains in one process only")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = world.place(resolve_device(config.device))
    text: WordTextEncoderConfig | CaptionCache = config.text
    if config.text_encoder != "word":
        encoder = HFTextEncoder.from_pretrained(config.text_encoder, device)
        if encoder.dim != config.model.text_dim:
            raise ValueError(
                f"model.text_dim {config.model.text_dim} must equal the hidden size {encoder.dim} of {config.text_encoder}"
            )
        text = CaptionCache(encoder, device)
    decode = None
    if config.decoded_weight > 0:
        if vae is None:
            raise ValueError("decoded_weight needs the VAE whose latents these are")
        frozen = copy.deepcopy(vae).to(device).eval().requires_grad_(False)  # the caller's VAE stays as it was

        def decode(z: torch.Tensor) -> torch.Tensor:
            return frozen.decoder(frozen.denormalize(z))

    grounder = None
    if config.grounding_weight > 0 or config.still_weight > 0:
        if vae is None:
            name = "grounding_weight" if config.grounding_weight > 0 else "still_weight"
            raise ValueError(f"{name} needs the VAE whose latents these are")
        grounder = Grounder(config.model.patch_size, vae.spatial_compression, vae.temporal_compression)
    by_scene = [name for name, on in (("still_weight", config.still_weight > 0),
                                      ("two_object_weight", config.two_object_weight != 1)) if on]  # fmt: skip
    if by_scene and not any(r.get("scene") is not None for b in buckets for r in b.records):
        raise ValueError(f"{by_scene[0]} needs clips with scene records (a Shapes World cache); these clips have none")
    clip_draws = [clip_weights(b, config.two_object_weight) for b in buckets]

    torch.manual_seed(config.seed)
    denoiser = Denoiser(config.model, text).to(device)
    path = checkpoint.latest_checkpoint(run_dir) if resume else None
    if path is None and config.init_from is not None:
        load_initial_weights(denoiser, config)
    adapt(denoiser, config)  # LoRA: adapters on the loaded model, the rest frozen
    if config.gradient_checkpointing:
        denoiser.transformer.enable_gradient_checkpointing()
    if config.compile:
        compile_transformer(denoiser.transformer, device)
        denoiser.text_multiple = TEXT_MULTIPLE_COMPILED
    state = checkpoint.load_checkpoint(path) if path is not None else None
    if state is not None:
        _check_resumable(state, config, run_dir)
        denoiser.load_state_dict(state["model"])
    # Every process starts from the same weights (loaded, or seeded alike); DDP checks and keeps them
    # so, FSDP cuts each process's slice from them. The optimizer and the EMA then hold slices too.
    sharded = config.fsdp and world.size > 1
    if sharded:
        distributed.fully_shard(denoiser, denoiser.transformer.blocks, world, device)
    trained = [p for p in denoiser.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(denoiser, config.ema_decay)
    generator = torch.Generator().manual_seed(config.seed)
    bucket_weights = torch.tensor(list(weights), dtype=torch.float64)
    step = 0
    if state is not None:
        ema.shadow = {k: distributed.scattered_like(v, ema.shadow[k]) for k, v in state["ema"].items()}
        optimizer.load_state_dict(distributed.scattered_optimizer_state(state["optimizer"], trained))
        checkpoint.set_rng_state(state["rng"])
        generator.set_state(state["generator"])
        step = int(state["step"])
        if world.main:
            trim_log(run_dir, step)
    model = denoiser if world.size == 1 or sharded else data_parallel(denoiser, device)
    end = min(config.steps, stop_at) if stop_at is not None else config.steps

    def save() -> None:
        # Whole tensors (gathered from every process's slices under FSDP), written by rank 0 alone.
        state = {
            "step": step,
            "model": gathered(denoiser.state_dict()),
            "ema": gathered(ema.shadow),
            "optimizer": gathered(optimizer.state_dict()),
            "rng": checkpoint.rng_state(),
            "generator": generator.get_state(),
            "config": config.to_dict(),
        }
        if world.main:
            checkpoint.save_checkpoint(state, run_dir, step, keep_last=config.keep_last)

    losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    smoothed = None
    averaged = None  # the EMA weights in a model of their own, for validation

    def validate(at: int) -> None:
        """Log the EMA weights' validation loss at step ``at``."""
        nonlocal averaged
        if averaged is None:
            # Built without drawing from the global RNG (its init is overwritten at once), so that a
            # resumed run, which builds it at another step, draws the same numbers as an unbroken one.
            with torch.random.fork_rng(devices=[]):
                averaged = build_denoiser(config, text).to(device)
        averaged.load_state_dict(gathered(ema.shadow))
        with autocast(device, config.precision):
            val_losses.append((at, validation_loss(averaged, validation, config, seed=config.seed)))
        log.write(json.dumps({"step": at, "val_loss": round(val_losses[-1][1], 5)}) + "\n")

    denoiser.train()
    with (
        tqdm(total=config.steps, initial=step, disable=not progress or not world.main, unit="step", dynamic_ncols=True) as bar,
        open(run_dir / LOG_NAME if world.main else os.devnull, "a", buffering=1) as log,
        StopSignals() as stop,
    ):
        if validation is not None and config.val_every and step == 0 < end and config.init_from is not None:
            validate(0)  # a fine-tune logs where it starts: the loaded model's loss
        while step < end:
            tic = time.perf_counter()
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = draw_batch(config, buckets, bucket_weights, generator, grounder, clip_draws)
            with autocast(device, config.precision):
                loss = diffusion_loss(model, batch, config, generator, decode, parts := {}, world)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = distributed.as_float(torch.nn.utils.clip_grad_norm_(trained, config.grad_clip))
            optimizer.step()
            ema.update(denoiser, step)
            step += 1
            value = world.mean(float(loss.detach()))  # the whole batch's loss
            losses.append(value)
            smoothed = value if smoothed is None else 0.98 * smoothed + 0.02 * value
            seconds = time.perf_counter() - tic
            tokens = batch.latents.shape[0] * tokens_per_clip(batch.latents.shape[1:], config.model.patch_size)
            record = {"step": step, "lr": lr, "loss": value, "grad_norm": round(grad_norm, 4),
                      "tokens": tokens, "seconds": round(seconds, 3)}  # fmt: skip
            record.update(parts)  # "decoded", "binding", "grounding": the extra terms, unweighted
            log.write(json.dumps(record) + "\n")
            if validation is not None and config.val_every and (step % config.val_every == 0 or step == end):
                validate(step)
            postfix = {"loss": f"{smoothed:.4f}", "tok_s": f"{tokens / seconds:.0f}"}
            if val_losses:
                postfix["val"] = f"{val_losses[-1][1]:.4f}"
            bar.set_postfix(postfix)
            bar.update(1)
            stopping = world.any(stop.requested)  # every process stops after the same step
            if step % config.checkpoint_every == 0 or step == end or stopping:
                save()
            if stopping:
                raise KeyboardInterrupt
    if sharded:  # the result holds whole weights, in every process, as an unsharded run's does
        whole = build_denoiser(config, text).to(device)
        whole.load_state_dict(gathered(denoiser.state_dict()))
        denoiser, ema.shadow = whole, gathered(ema.shadow)
    return DiTTrainResult(denoiser, ema, step, losses, val_losses, config)


def _check_resumable(state: dict, config: DiTTrainConfig, run_dir: Path) -> None:
    """Refuse a checkpoint of another model or text encoder than ``config``'s, naming what differs."""
    # Checkpoints from before the choice of encoder trained the word encoder.
    if (
        state["config"]["model"] != asdict(config.model)
        or state["config"]["text"] != asdict(config.text)
        or state["config"].get("text_encoder", "word") != config.text_encoder
    ):
        saved, asked = state["config"]["model"], asdict(config.model)
        differs = ", ".join(f"{k} {saved[k]} not {asked[k]}" for k in asked if k in saved and saved[k] != asked[k])
        raise ValueError(
            f"{run_dir}: holds a run of another model config ({differs or 'its text encoder differs'}); "
            "resume it with the options it was started with, or use a new run folder"
        )
    saved = (state["config"].get("lora_rank", 0), state["config"].get("lora_alpha"))
    if saved != (config.lora_rank, config.lora_alpha):
        raise ValueError(
            f"{run_dir}: holds a run with LoRA rank {saved[0]} and alpha {saved[1]}, not {config.lora_rank} and "
            f"{config.lora_alpha}; resume it with the options it was started with, or use a new run folder"
        )


def ema_denoiser(result: DiTTrainResult) -> Denoiser:
    """A copy of the trained pair holding the EMA weights, in eval mode; a frozen encoder is
    shared, not copied, and taken out of its caption cache. A LoRA run's adapters are still
    layers of their own (:func:`~kinetoscope.transformer.lora.merge_lora` folds them in)."""
    trained = result.denoiser
    text = trained.text_encoder
    if isinstance(text, WordTextEncoder):
        text = text.config
    elif isinstance(text, CaptionCache):
        text = text.encoder
    copy = build_denoiser(result.config, text) if result.config is not None else Denoiser(trained.transformer.config, text)
    copy.load_state_dict(result.ema.shadow)
    return copy.eval()


def load_run_ema(run_dir: str | Path) -> tuple[Denoiser, DiTTrainConfig, int]:
    """The EMA weights of ``run_dir``'s newest checkpoint as a :class:`Denoiser` in eval mode,
    with the run's own config and step: a model to export or judge while the run goes on."""
    path = checkpoint.latest_checkpoint(run_dir)
    if path is None:
        raise ValueError(f"{run_dir}: holds no checkpoint to export")
    state = checkpoint.load_checkpoint(path)
    config = DiTTrainConfig(**state["config"])
    text = config.text if config.text_encoder == "word" else HFTextEncoder.from_pretrained(config.text_encoder)
    denoiser = build_denoiser(config, text)
    denoiser.load_state_dict(state["ema"])
    return denoiser.eval(), config, int(state["step"])

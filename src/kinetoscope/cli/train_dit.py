"""``kinetoscope train dit``: cache Shapes World latents once, train the DiT + text encoder, export a pipeline.

The text encoder is the word encoder, trained with the DiT, or with ``--text-encoder DIR`` a
frozen pretrained one (T5, CLIP, a sentence-transformer's BERT) from a local transformers folder.

The cache and the run both resume: shards already encoded are kept, and a run folder holding
a checkpoint continues from it. The export is a complete model folder (``model_index.json``,
``vae/``, ``transformer/``, ``text_encoder/``) that ``generate --model`` and
``KinetoscopePipeline.from_pretrained`` read; the EMA weights are what is exported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from kinetoscope.cli.train_arguments import add_precision_argument, attribute_list, parse_mask_mix, patch_size
from kinetoscope.shapes.swaps import EXCHANGEABLE

PRESETS = ("shapes", "debug")


def add_parser(models: argparse._SubParsersAction) -> None:
    """Add ``train dit`` to the ``train`` group."""
    dit = models.add_parser(
        "dit",
        help="train the diffusion transformer and its text encoder on cached Shapes World latents",
        description="Render Shapes World clips and encode them once through the VAE (cached, resumable), then "
        "train the diffusion transformer and the word text encoder (or read a frozen pretrained one, "
        "--text-encoder) with given-frame masks and caption dropout, and export the EMA weights as a model folder.",
    )
    dit.add_argument("--run-dir", type=Path, default=Path("runs/dit"), help="checkpoints and log.jsonl (default: runs/dit)")
    dit.add_argument("--preset", choices=PRESETS, default="shapes", help="model and data size (default: shapes, the shipped model; debug: a smoke test)")
    dit.add_argument("--steps", type=int, default=None, help="total optimizer steps (default: 9600 for shapes, ~2.3 h on 2 CPU cores)")
    dit.add_argument("--tokens-per-batch", type=int, default=None, help="patch tokens per batch (default: 2560, 32 clips of 16x64x64)")
    dit.add_argument("--motion-weight", type=float, default=None,
                     help="extra loss weight where the latent changes between frames (default: the preset's)")  # fmt: skip
    dit.add_argument("--still-weight", type=float, default=None, metavar="W",
                     help="extra loss weight W where an object asked to stay still is (from the Shapes World "
                     "clips' scene records), which --motion-weight leaves at the background's (default: 0, off)")  # fmt: skip
    dit.add_argument("--two-object-weight", type=float, default=None, metavar="K",
                     help="draw two-object clips K times as often as one-object clips (from the Shapes World "
                     "clips' scene records; default: 1, alike)")  # fmt: skip
    dit.add_argument("--decoded-weight", type=float, default=None, metavar="W",
                     help="add W x the pixel MSE of the decoded one-step prediction on low-noise clips (decoder "
                     "frozen; default: 0, off)")  # fmt: skip
    dit.add_argument("--decoded-max-t", type=float, default=None, metavar="T",
                     help="--decoded-weight counts clips with t below T (default: 0.3)")  # fmt: skip
    dit.add_argument("--decoded-clips", type=int, default=None, metavar="N",
                     help="--decoded-weight decodes at most N clips per step (default: 4)")  # fmt: skip
    dit.add_argument("--binding-weight", type=float, default=None, metavar="W",
                     help="add W x a ranking loss on two-object clips: the caption must predict better than the "
                     "same caption with the objects' directions exchanged (one process only; default: 0, off)")  # fmt: skip
    dit.add_argument("--binding-temperature", type=float, default=None, metavar="TAU",
                     help="--binding-weight's loss fades once the exchange is worse by a few TAU (default: 0.01)")  # fmt: skip
    dit.add_argument("--binding-min-t", type=float, default=None, metavar="T",
                     help="--binding-weight counts clips with t from T (default: 0.5)")  # fmt: skip
    dit.add_argument("--binding-attributes", type=attribute_list, default=None, metavar="A,B",
                     help="what --binding-weight exchanges between the objects, at once: some of "
                     f"{','.join(EXCHANGEABLE)} (default: direction)")  # fmt: skip
    dit.add_argument("--grounding-weight", type=float, default=None, metavar="W",
                     help="add W x an attention loss on two-object clips: each object's video tokens read its own "
                     "caption phrase over the other object's (word text encoder, one process only; default: 0, off)")  # fmt: skip
    dit.add_argument("--logit-mean", type=float, default=None,
                     help="training times t = sigmoid(M + S * normal) before the shift: M above 0 trains more on "
                     "high noise, where layout and motion are decided (default: 0)")  # fmt: skip
    dit.add_argument("--logit-std", type=float, default=None, help="S of --logit-mean, above 0 (default: 1)")
    dit.add_argument("--patch-size", type=patch_size, default=None, metavar="PT,PH,PW",
                     help="latent values per spacetime patch along time, height, width (default: the preset's, "
                     "1,2,2, for 16 x 16 pixels per token; 1,4,4 for a --vae at 4x spatial compression; 1,1,1 "
                     "gives 4x the tokens per clip and so 4x fewer clips per batch)")  # fmt: skip
    dit.add_argument("--width", type=int, default=None, help="transformer width (default: the preset's, 256)")
    dit.add_argument("--depth", type=int, default=None,
                     help="transformer blocks (default: the preset's, 6); with --init-from, more than the model's "
                     "deepens it, the added blocks starting as copies that change nothing")  # fmt: skip
    dit.add_argument("--heads", type=int, default=None, help="attention heads (default: the preset's, 4)")
    dit.add_argument("--self-condition", action="store_true",
                     help="the transformer also reads a clean estimate of the latent: its own prediction of the "
                     "sampler's previous step (self-conditioning); with --init-from, added to the model with a zero "
                     "embedding, so training starts from the same predictions")  # fmt: skip
    dit.add_argument("--text-conditioning", choices=("cross", "joint"), default=None,
                     help="how video tokens read the text: cross-attention, or one joint self-attention over "
                     "[text; video] (default: the preset's)")  # fmt: skip
    dit.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default: 5e-4)")
    dit.add_argument("--vae", type=Path, default=None,
                     help="VAE folder whose latents to train on (default: the --init-from model's own VAE, else the shipped one)")  # fmt: skip
    dit.add_argument("--cache-dir", type=Path, default=None, help="latent cache folder (default: RUN_DIR/latents)")
    dit.add_argument("--data", type=Path, default=None, metavar="CACHE",
                     help="train on a cache from 'data cache-latents' (curated video) instead of Shapes World")  # fmt: skip
    dit.add_argument("--text-encoder", type=Path, default=None, metavar="DIR",
                     help="a local transformers folder (T5, CLIP, BERT) read frozen, each caption encoded once "
                     "(default: the word encoder, trained with the DiT)")  # fmt: skip
    dit.add_argument("--init-from", type=Path, default=None, metavar="DIR",
                     help="fine-tune: start from this model folder's transformer and word encoder "
                     "(their configs replace the preset's; a resumed run keeps its checkpoint)")  # fmt: skip
    dit.add_argument("--lora-rank", type=int, default=None, metavar="R",
                     help="with --init-from: train rank-R LoRA adapters beside the transformer's attention and MLP "
                     "projections, every other weight frozen; the export holds the merged model and the adapters "
                     "alone in EXPORT/lora (for generate --lora); needs peft (pip install 'kinetoscope[lora]')")  # fmt: skip
    dit.add_argument("--lora-alpha", type=float, default=None, metavar="A",
                     help="LoRA scale numerator: the adapters add (A / R) B A x (default: A = R)")  # fmt: skip
    dit.add_argument("--min-straight-frames", type=int, default=None, metavar="K",
                     help="cache clips whose objects go K frames before their first wall bounce "
                     "(start positions redrawn; default: 15 for shapes, 0 for debug; 0: the spec's uniform starts)")  # fmt: skip
    dit.add_argument("--straight-fraction", type=float, default=None, metavar="F",
                     help="share of the clips --min-straight-frames applies to (default: 0.8 for shapes, 1 for debug)")  # fmt: skip
    dit.add_argument("--masks", default=None, metavar="KIND=W,...",
                     help="share of training clips per given-frame mask, e.g. 'suffix=0.12,last=0.08' (kinds: "
                     "none, first, last, first_last, prefix, suffix, random; unnamed kinds keep the preset's)")  # fmt: skip
    dit.add_argument("--export", type=Path, default=None, help="model folder written at the end (default: RUN_DIR/final)")
    dit.add_argument("--export-now", action="store_true",
                     help="write the EMA weights of RUN_DIR's newest checkpoint to --export and exit, "
                     "without training (safe while the run goes on)")  # fmt: skip
    dit.add_argument("--data-seed", type=int, default=None, metavar="K",
                     help="seed of the rendered Shapes World clips (default: 0); another K caches other clips")  # fmt: skip
    dit.add_argument("--val-clips", type=int, default=None, metavar="N",
                     help="validation clips (default: 256): Shapes World clips rendered from a seed of their own and "
                     "cached beside the training ones; with --data, whole sources of the largest bucket held out of "
                     "training (at most 10%% of its clips)")  # fmt: skip
    dit.add_argument("--val-every", type=int, default=None, metavar="K",
                     help="log the EMA weights' loss on the validation clips every K steps and at the end "
                     "(default: 400; 0: no validation)")  # fmt: skip
    dit.add_argument("--workers", type=int, default=2, help="processes rendering clips for the cache (default: 2)")
    dit.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches (default: 0)")
    dit.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default: 200)")
    dit.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, ... (default: auto)")
    add_precision_argument(dit)
    dit.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: 0, one per core)")
    dit.add_argument("--gradient-checkpointing", action="store_true",
                     help="recompute each transformer block's activations in the backward pass: less memory per "
                     "step for about a third more time (for batches or models that do not fit)")  # fmt: skip
    dit.add_argument("--compile", action="store_true",
                     help="compile the transformer with torch.compile (TorchInductor; a C++ compiler on a CPU): "
                     "each bucket's first step pays ~1 minute of compilation, later ones run ~1.17x faster on this "
                     "CPU, ~1.5x with --precision bf16 (benchmarks/compile.py)")  # fmt: skip
    dit.add_argument("--fsdp", action="store_true",
                     help="under torchrun, shard weights, gradients, optimizer state and EMA over the processes "
                     "(FSDP) instead of a whole copy in each (DDP); the same training, for models too large to copy")  # fmt: skip
    dit.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    dit.set_defaults(func=run_dit)


def build_config(args: argparse.Namespace, captions: Sequence[str] = (), text_dim: int | None = None):
    """The run's :class:`DiTTrainConfig` from the preset and the flags; ``captions`` (of a
    curated cache) add their words to the word encoder's vocabulary; ``text_dim`` is the hidden
    size of ``--text-encoder``."""
    from kinetoscope.data.shapes_latents import LatentBucketSpec, ShapesLatentsConfig
    from kinetoscope.shapes.vocabulary import caption_language
    from kinetoscope.text import WordTextEncoderConfig, WordTokenizer
    from kinetoscope.training.dit import DiTTrainConfig
    from kinetoscope.transformer import DiTConfig

    vocab = WordTokenizer.from_words([*caption_language(), *captions]).vocab
    overrides = {
        k: v
        for k, v in (
            ("steps", args.steps),
            ("tokens_per_batch", args.tokens_per_batch),
            ("lr", args.lr),
            ("motion_weight", args.motion_weight),
            ("still_weight", args.still_weight),
            ("two_object_weight", args.two_object_weight),
            ("decoded_weight", args.decoded_weight),
            ("decoded_max_t", args.decoded_max_t),
            ("decoded_clips", args.decoded_clips),
            ("binding_weight", args.binding_weight),
            ("binding_temperature", args.binding_temperature),
            ("binding_min_t", args.binding_min_t),
            ("binding_attributes", args.binding_attributes),
            ("grounding_weight", args.grounding_weight),
            ("logit_mean", args.logit_mean),
            ("logit_std", args.logit_std),
            ("val_clips", args.val_clips),
            ("val_every", args.val_every),
        )
        if v is not None
    }
    common = {"seed": args.seed, "checkpoint_every": args.checkpoint_every, "device": args.device, "fsdp": args.fsdp,
              "precision": args.precision, "gradient_checkpointing": args.gradient_checkpointing,
              "compile": args.compile}
    if args.text_encoder is not None:
        # Absolute, so that the run resumes whichever folder the command is started in.
        common["text_encoder"] = str(args.text_encoder.resolve())
    straight = {
        k: v
        for k, v in (
            ("min_straight_frames", args.min_straight_frames),
            ("straight_fraction", args.straight_fraction),
            ("seed", args.data_seed),
        )
        if v is not None
    }
    if args.preset == "debug":
        data = ShapesLatentsConfig(
            buckets=(LatentBucketSpec(16, 64, 64, 48, 0.8), LatentBucketSpec(1, 64, 64, 16, 0.2)), shard_size=32, **straight
        )
        config = DiTTrainConfig(
            model=DiTConfig(in_channels=8, text_dim=text_dim or 32, width=64, depth=2, heads=2),
            text=WordTextEncoderConfig(vocab=vocab, width=32, depth=1, heads=2),
            data=data,
            **({"steps": 20, "tokens_per_batch": 640, "warmup_steps": 5, "val_clips": 16} | overrides | common),
        )
    else:
        if text_dim is not None:
            common["model"] = replace(DiTTrainConfig().model, text_dim=text_dim)
        config = DiTTrainConfig(text=WordTextEncoderConfig(vocab=vocab), **(overrides | common))
        config.data = replace(config.data, **straight)
    if args.text_conditioning is not None:
        config = replace(config, model=replace(config.model, text_conditioning=args.text_conditioning))
    if args.patch_size is not None:
        config = replace(config, model=replace(config.model, patch_size=args.patch_size))
    if args.masks is not None:
        config = replace(config, masks=replace(config.masks, **parse_mask_mix(args.masks)))
    size = {k: v for k in ("width", "depth", "heads") if (v := getattr(args, k)) is not None}
    if size:
        config = replace(config, model=replace(config.model, **size))
    if args.vae is not None:
        config = replace(config, vae=str(args.vae.resolve()))
    if args.init_from is not None:
        # A fine-tune keeps the folder's architecture and vocabulary (run_dit refuses the flags that would
        # change them), but may deepen it.
        model, text = _init_configs(args.init_from)
        if args.depth is not None:
            if args.depth < model.depth:
                raise ValueError(f"--depth {args.depth}: the --init-from model has {model.depth} blocks, and blocks can "
                                 "only be added")  # fmt: skip
            model = replace(model, depth=args.depth)
        config = replace(config, model=model, text=text, init_from=str(args.init_from.resolve()))
    if args.self_condition:  # after --init-from's architecture: a fine-tune adds it to the folder's model
        config = replace(config, model=replace(config.model, self_condition=True))
    if args.lora_rank is not None or args.lora_alpha is not None:  # checked against init_from
        config = replace(config, lora_rank=args.lora_rank or 0, lora_alpha=args.lora_alpha)
    return config


def _init_configs(folder: Path):
    """The transformer and word-encoder configs of the model folder ``--init-from`` names."""
    from kinetoscope import hub
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.text import WordTextEncoder, WordTextEncoderConfig
    from kinetoscope.transformer import DiffusionTransformer, DiTConfig

    if not (folder / "transformer").is_dir() or not (folder / "text_encoder").is_dir():
        raise KinetoscopeError(f"--init-from {folder}: not a model folder (needs transformer/ and text_encoder/)")
    model = hub.load_config(DiTConfig, folder / "transformer", class_name=DiffusionTransformer.__name__)
    try:
        text = hub.load_config(WordTextEncoderConfig, folder / "text_encoder", class_name=WordTextEncoder.__name__)
    except KinetoscopeError as err:
        raise KinetoscopeError(f"--init-from needs a model with the word text encoder: {err}") from None
    return model, text


def run_dit(args: argparse.Namespace) -> int:
    """Cache, train, export; bad arguments raise KinetoscopeError (exit 2)."""
    from kinetoscope.errors import KinetoscopeError

    for name in ("run_dir", "cache_dir", "export"):
        path = getattr(args, name)
        if path is not None and path.exists() and not path.is_dir():
            raise KinetoscopeError(f"--{name.replace('_', '-')} {path}: exists and is not a folder")
    if args.workers < 1 or args.threads < 0:
        raise KinetoscopeError(f"--workers must be at least 1 and --threads 0 or more, got {args.workers}, {args.threads}")
    if args.data is not None and (args.cache_dir is not None or not args.data.is_dir()):
        raise KinetoscopeError(f"--data {args.data}: needs a cache folder, and excludes --cache-dir")
    if args.init_from is not None and args.text_encoder is not None:
        raise KinetoscopeError("--init-from fine-tunes a model with its own word encoder; it excludes --text-encoder")
    for flag in ("text_conditioning", "patch_size", "width", "heads"):
        if args.init_from is not None and getattr(args, flag) is not None:
            raise KinetoscopeError(f"--init-from keeps the model's own architecture; it excludes --{flag.replace('_', '-')}")
    if args.export_now:
        from kinetoscope.cli.train_dit_export import export_now

        return export_now(args)
    if args.lora_rank is not None or args.lora_alpha is not None:
        if args.init_from is None:
            raise KinetoscopeError("--lora-rank adapts a trained model: it needs --init-from DIR")
        if args.lora_rank is None or args.lora_rank < 1 or (args.lora_alpha is not None and not args.lora_alpha > 0):
            raise KinetoscopeError(f"--lora-rank must be at least 1 and --lora-alpha above 0; got {args.lora_rank}, {args.lora_alpha}")
        if args.self_condition:
            # LoRA freezes every weight but its adapters: the estimate's new embedding would stay at zero.
            raise KinetoscopeError("--self-condition adds weights that --lora-rank would freeze at zero: fine-tune without LoRA")
        from kinetoscope.transformer.lora import require_peft

        require_peft()  # before minutes of latent caching
    text_dim = None
    if args.text_encoder is not None:
        from kinetoscope.text import HFTextEncoder

        try:
            text_dim = HFTextEncoder.from_pretrained(args.text_encoder).dim
        except KinetoscopeError as err:
            raise KinetoscopeError(f"--text-encoder {err}") from None
    try:
        config = build_config(args, text_dim=text_dim)
    except ValueError as err:
        raise KinetoscopeError(f"train dit: {err}") from None

    import torch

    from kinetoscope.training import distributed
    from kinetoscope.training.run import check_compiler, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.compile:
        check_compiler(device)  # before the latents are cached, not after
    # One process, unless torchrun started several.
    return distributed.run_in_group(device, lambda world, device: _cache_train_export(args, config, text_dim, device, world))


def _cache_train_export(args: argparse.Namespace, config, text_dim: int | None, device, world) -> int:
    """The body of ``run_dit`` once the device (and the process group) are set: in a process
    group rank 0 builds the latent cache while the others wait, every process trains its share,
    and rank 0 prints and exports."""
    from kinetoscope.cli.train_dit_export import save_model, vae_folder, vae_mismatch
    from kinetoscope.data.latent_cache import hold_out_sources, load_buckets, vae_fingerprint
    from kinetoscope.data.shapes_latents import build_shapes_latents, load_shapes_latents, validation_config
    from kinetoscope.errors import KinetoscopeError
    from kinetoscope.training.dit import ema_denoiser, train_dit
    from kinetoscope.transformer.config import patch_for_vae
    from kinetoscope.vae.model import CausalVideoVAE

    if config.fsdp and world.size == 1:
        print("note: --fsdp shards the model over several processes, and this is one; start it with torchrun "
              "--nproc_per_node N -m kinetoscope train dit ... (training goes on unsharded)")  # fmt: skip
    vae = CausalVideoVAE.from_pretrained(vae_folder(args.vae, args.init_from), device=device)
    if args.init_from is not None and config.model.in_channels != vae.latent_channels:
        raise KinetoscopeError(vae_mismatch(args.init_from, config.model.in_channels, vae.latent_channels))
    weights, validation = None, None
    if args.data is not None:
        # A curated cache: its buckets are whatever shapes it holds, drawn in proportion to their clips.
        buckets = load_buckets(args.data, vae_fingerprint(vae))
        if config.val_every:
            buckets[0], validation = hold_out_sources(buckets[0], config.val_clips)
            if validation is None:
                world.say(f"no validation: the largest bucket ({buckets[0].latents.shape[0]} clips) is too small to spare "
                          "a source for it")  # fmt: skip
            else:
                sources = {r.get("source") or r.get("path") for r in validation.records}
                world.say(f"validation: {validation.latents.shape[0]} clips from {len(sources)} source(s) of the largest "
                          "bucket, held out of training")  # fmt: skip
        weights = [float(b.latents.shape[0]) for b in buckets]
        config = build_config(args, [r.get("text", "") for b in buckets for r in b.records], text_dim)
    else:
        cache = args.cache_dir or args.run_dir / "latents"
        val_data = validation_config(config.data, config.val_clips) if config.val_every else None
        val_cache = cache.with_name(f"{cache.name}-val{config.val_clips}")
        if world.main:  # one writer; the other processes wait for it, then read
            build_shapes_latents(config.data, vae, cache, workers=args.workers, progress=not args.no_progress)
            if val_data is not None:
                build_shapes_latents(val_data, vae, val_cache, workers=args.workers, progress=not args.no_progress)
        world.barrier()
        buckets = load_shapes_latents(config.data, cache, vae_fingerprint(vae))
        if val_data is not None:
            validation = load_shapes_latents(val_data, val_cache, vae_fingerprint(vae))[0]
    if config.model.in_channels != vae.latent_channels:
        # The transformer denoises this VAE's latents, however many channels it has.
        config.model = replace(config.model, in_channels=vae.latent_channels)
    if args.patch_size is None and args.init_from is None:
        # The preset's patches cover 16 x 16 pixels of the 8x VAE; keep that for another VAE, so a
        # clip has as many tokens (and a batch as many clips) as the recipe was measured with.
        config.model = replace(config.model, patch_size=patch_for_vae(config.model.patch_size, vae.spatial_compression))
    try:
        result = train_dit(
            config, buckets, args.run_dir, progress=not args.no_progress, weights=weights, validation=validation, vae=vae
        )
    except ValueError as err:
        raise KinetoscopeError(str(err)) from None
    if not world.main:
        return 0
    last = f"{sum(result.losses[-50:]) / len(result.losses[-50:]):.4f}" if result.losses else "n/a (already trained)"
    print(f"trained to step {result.step} of {config.steps}; mean loss of the last steps {last}")
    if result.val_losses:
        step, val = result.val_losses[-1]
        print(f"validation loss at step {step}: {val:.4f} ({validation.latents.shape[0]} clips the run never trained on)")
    export = save_model(args, vae.cpu(), ema_denoiser(result), config)
    print(f"exported to {export}")
    return 0

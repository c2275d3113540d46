"""Low-rank adapters (LoRA) on a diffusion transformer's attention and MLP projections, through peft.

A fine-tune that trains only ``B @ A`` beside each frozen projection (``W x + (alpha / r) B A x``)
needs gradients and optimizer state for a few percent of the weights, and its result is a small
file that adapts any copy of the same base model. ``B`` starts at zero, so an adapted model
predicts exactly what its base did until training moves it. Adapters are trained with peft's
layers; :func:`merge_lora` folds them into the base weights, after which the model is a plain
:class:`~kinetoscope.transformer.DiffusionTransformer` again (same keys, same speed).

An adapter folder is peft's: ``adapter_config.json`` and ``adapter_model.safetensors``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kinetoscope.errors import KinetoscopeError

# Every block's attention projections (self: qkv, out; cross: q, kv, out) and MLP. The time and
# text embeddings, the patch embedding and the output layer stay as the base model has them.
TARGETS = r".*blocks\.\d+\.(attn\.(qkv|out)|cross_attn\.(q|kv|out)|mlp\.(fc1|fc2))"
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


def require_peft():
    """peft, or a KinetoscopeError saying how to install it."""
    try:
        import peft
    except ImportError:
        raise KinetoscopeError("LoRA needs peft: pip install 'kinetoscope[lora]'") from None
    return peft


def add_lora(module: nn.Module, rank: int, alpha: float | None = None) -> nn.Module:
    """Put a rank-``rank`` adapter (scaled ``alpha / rank``; ``alpha`` defaults to ``rank``) beside
    each of ``module``'s block projections, in place, and freeze everything else in ``module``.
    Its predictions are unchanged until the adapters train."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    peft = require_peft()
    config = peft.LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, target_modules=TARGETS)
    return peft.inject_adapter_in_model(config, module)  # only the adapters require grad after this


def has_lora(module: nn.Module) -> bool:
    """Whether ``module`` holds adapters not yet merged."""
    return any(type(m).__module__.startswith("peft.") for m in module.modules())


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain layer back, in place: ``module``
    predicts as before and is the un-adapted architecture again (its keys, no peft layers, every
    weight trainable, as a freshly built one)."""
    return _unload(module, merge=True).requires_grad_(True)


def _unload(module: nn.Module, merge: bool) -> nn.Module:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, layer in list(module.named_modules()):
        if isinstance(layer, BaseTunerLayer):
            if merge:
                layer.merge()
            parent, _, attribute = name.rpartition(".")
            setattr(module.get_submodule(parent), attribute, layer.get_base_layer())
    if hasattr(module, "peft_config"):
        del module.peft_config  # so that another adapter can be added later
    return module


def save_lora(module: nn.Module, directory: str | Path) -> Path:
    """Write ``module``'s adapters (not its base weights) as a peft adapter folder."""
    peft = require_peft()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = next(iter(module.peft_config.values()))  # set by inject_adapter_in_model
    config.save_pretrained(str(directory))
    state = {k: v.detach().contiguous().cpu() for k, v in peft.get_peft_model_state_dict(module).items()}
    save_file(state, directory / WEIGHTS_NAME)
    return directory


def load_lora(module: nn.Module, directory: str | Path, scale: float = 1.0) -> nn.Module:
    """Adapt ``module`` with the adapter folder ``directory``, ``scale`` times as strongly (0: the
    base model; 1: as trained), merged into its weights. KinetoscopeError if the folder is not
    an adapter for this architecture."""
    if not math.isfinite(scale):
        raise ValueError(f"the LoRA scale must be a finite number, got {scale}")
    peft = require_peft()
    directory = Path(directory)
    if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise KinetoscopeError(f"--lora {directory}: not a LoRA adapter folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        config = peft.LoraConfig.from_pretrained(str(directory))
        state = load_file(directory / WEIGHTS_NAME)
    except (OSError, ValueError, TypeError) as err:
        raise KinetoscopeError(f"--lora {directory}: unreadable ({str(err).splitlines()[0]})") from None
    trainable = {name: p.requires_grad for name, p in module.named_parameters()}  # injecting freezes them
    peft.inject_adapter_in_model(config, module)
    device = next(module.parameters()).device
    result = peft.set_peft_model_state_dict(module, {k: v.to(device) for k, v in state.items()})
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        _restore(_unload(module, merge=False), trainable)  # the base model as it was, not half adapted
        raise KinetoscopeError(f"--lora {directory}: its adapters do not fit this model ({(missing or result.unexpected_keys)[0]})")
    with torch.no_grad():
        for name, param in module.named_parameters():
            if ".lora_B." in name:
                param.mul_(scale)
    return _restore(_unload(module, merge=True), trainable)


def _restore(module: nn.Module, trainable: dict[str, bool]) -> nn.Module:
    for name, param in module.named_parameters():
        param.requires_grad_(trainable[name])
    return module

"""Save and load any model as a folder of ``config.json`` plus safetensors weights, as diffusers does.

Model-agnostic: a model is an ``nn.Module`` built from one dataclass config. ``config.json`` holds
the config's fields plus ``_class_name`` (checked on load, so that pointing a VAE loader at a
transformer folder fails clearly) and ``_kinetoscope_version``. JSON arrays come back as tuples,
the type configs use for sequences.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from kinetoscope import __version__
from kinetoscope.errors import KinetoscopeError
from kinetoscope.io.atomic import atomic_output

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

ConfigT = TypeVar("ConfigT")


def save_pretrained(model: nn.Module, config: Any, directory: str | Path) -> Path:
    """Write ``model``'s weights and its dataclass ``config`` into ``directory`` (created if needed)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise ValueError(f"config must be a dataclass instance, got {type(config).__name__}")
    directory = Path(directory)
    data = {"_class_name": type(model).__name__, "_kinetoscope_version": __version__, **dataclasses.asdict(config)}
    with atomic_output(directory / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    with atomic_output(directory / WEIGHTS_NAME) as tmp:
        save_model(model, str(tmp), metadata={"format": "pt"})
    return directory


def load_config(config_cls: type[ConfigT], directory: str | Path, *, class_name: str) -> ConfigT:
    """Read ``directory/config.json`` into ``config_cls``; ``class_name`` is the model it must describe."""
    path = Path(directory) / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KinetoscopeError(f"{path}: not found (expected a model folder with {CONFIG_NAME})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KinetoscopeError(f"{path}: unreadable ({err})") from None
    if not isinstance(data, dict):
        raise KinetoscopeError(f"{path}: expected a JSON object, got {type(data).__name__}")
    found = data.get("_class_name", class_name)
    if found != class_name:
        raise KinetoscopeError(f"{path}: describes a {found}, not a {class_name}")
    fields = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    values = {k: _tuples(v) for k, v in data.items() if not k.startswith("_")}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise KinetoscopeError(f"{path}: unknown fields for {class_name}: {', '.join(unknown)}")
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as err:
        raise KinetoscopeError(f"{path}: invalid config ({err})") from None


def load_weights(model: nn.Module, directory: str | Path, device: str | torch.device = "cpu") -> None:
    """Load ``directory``'s safetensors into ``model`` in place; every tensor must match exactly."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise KinetoscopeError(f"{path}: not found (expected the weights beside {CONFIG_NAME})")
    model.to(device)
    try:
        load_model(model, path, strict=True, device=str(torch.device(device)))
    except (RuntimeError, OSError, ValueError, SafetensorError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise KinetoscopeError(f"{path}: does not fit the model in {CONFIG_NAME} ({first_line})") from None


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value

"""Scores from models the user brings: aesthetics, text overlay, or anything else per clip.

A scorer is any object with ``score(frames) -> float`` (:class:`ClipScorer`). The built-in
one runs a saved PyTorch program: a module taking images ``"b 3 h w"`` float in [0, 1] at
``size x size`` and returning one number per image; a clip scores the mean over its sampled
frames. So a LAION aesthetic predictor or an OCR text-area model, saved with its preprocessing
inside by ``torch.export.save`` (``.pt2``, batch dimension dynamic) or as TorchScript
(``torch.jit.script`` / ``trace``, deprecated by PyTorch but still common), plugs in unchanged;
any other scorer is named as ``module:Name`` (:func:`load_scorer`). Without a model the
column stays empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from kinetoscope.errors import KinetoscopeError

# The score columns a scorer can fill, and the flag that gives each its model.
SCORER_COLUMNS = {"aesthetic": "--aesthetic-model", "text_overlay": "--text-model"}


@runtime_checkable
class ClipScorer(Protocol):
    """Scores a clip from a few of its frames (RGB "h w 3" uint8)."""

    def score(self, frames: Sequence[np.ndarray]) -> float: ...


class TorchScriptScorer:
    """A ``torch.export`` program (``.pt2``) or TorchScript file as a :class:`ClipScorer`."""

    def __init__(self, path: str | Path, *, size: int = 224, flag: str = "--aesthetic-model") -> None:
        import torch

        path = Path(path)
        if not path.is_file():
            raise KinetoscopeError(f"{flag} {path}: no such model file")
        try:
            if path.suffix == ".pt2":
                self.model = torch.export.load(str(path)).module()
            else:
                self.model = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError, OSError) as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            raise KinetoscopeError(f"{flag} {path}: not a saved torch.export or TorchScript model ({reason})") from None
        self.size = size

    def score(self, frames: Sequence[np.ndarray]) -> float:
        import torch
        import torch.nn.functional as F
        from einops import rearrange

        x = rearrange(torch.from_numpy(np.stack(frames)), "b h w c -> b c h w").float() / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        with torch.no_grad():
            return float(self.model(x).float().mean())


def load_scorer(spec: str, flag: str) -> ClipScorer:
    """A scorer from a TorchScript file or a ``module:Name`` class built with no arguments."""
    from kinetoscope.data.curate import plugins

    if plugins.is_import_spec(spec) and not Path(spec).exists():
        return plugins.build(spec, flag, ClipScorer)  # type: ignore[return-value]
    return TorchScriptScorer(spec, flag=flag)

"""Shared fixtures: the installed console script, and small Shapes World clips made on the spot."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kinetoscope.shapes.render import RenderedClip, render_clip
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec

KINETOSCOPE = Path(sys.executable).parent / "kinetoscope"


@pytest.fixture(scope="session")
def kinetoscope_bin() -> Path:
    """Path of the installed ``kinetoscope`` console script (beside the running Python)."""
    assert KINETOSCOPE.exists(), f"{KINETOSCOPE} missing: install the package in editable mode"
    return KINETOSCOPE


@pytest.fixture(scope="session")
def run_cli(kinetoscope_bin: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``kinetoscope ARGS...`` as a user would; returns the completed process (text output)."""

    def run(*args: str | Path, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kinetoscope_bin), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
        )

    return run


TWO_OBJECT_SCENE = SceneSpec(
    "black",
    (
        ObjectSpec("red", "circle", "large", "right", "slowly"),
        ObjectSpec("blue", "square", "small", "down-left", "quickly"),
    ),
)


@pytest.fixture(scope="session")
def rendered_clip() -> RenderedClip:
    """A 16-frame 64 x 64 Shapes World clip of :data:`TWO_OBJECT_SCENE` (seed 0). Do not modify its arrays."""
    return render_clip(TWO_OBJECT_SCENE, height=64, width=64, num_frames=16, seed=0)


@pytest.fixture(scope="session")
def rendered_wide_clip() -> RenderedClip:
    """A 16:9 (64 x 112), 12-frame clip of one green triangle moving quickly up and to the right."""
    scene = SceneSpec("white", (ObjectSpec("green", "triangle", "large", "up-right", "quickly"),))
    return render_clip(scene, height=64, width=112, num_frames=12, seed=1)


def make_tiny_pipeline(seed: int = 0) -> "KinetoscopePipeline":  # noqa: F821
    """A pipeline of tiny random parts; the DiT's output layer is randomised so that text matters."""
    import torch

    from kinetoscope.pipelines import KinetoscopePipeline, SamplingDefaults
    from kinetoscope.shapes.vocabulary import caption_language
    from kinetoscope.text import WordTextEncoder, WordTextEncoderConfig, WordTokenizer
    from kinetoscope.transformer import DiffusionTransformer, DiTConfig
    from kinetoscope.vae.config import tiny
    from kinetoscope.vae.model import CausalVideoVAE

    torch.manual_seed(seed)
    vae = CausalVideoVAE(tiny())
    transformer = DiffusionTransformer(DiTConfig(in_channels=4, text_dim=32, width=64, depth=2, heads=2))
    for module in (transformer.final.linear, transformer.time_embed.modulation):
        torch.nn.init.normal_(module.weight, std=0.02)
    for block in transformer.blocks:
        if not block.joint:
            torch.nn.init.normal_(block.cross_attn.out.weight, std=0.2)
    vocab = WordTokenizer.from_words(caption_language()).vocab
    text = WordTextEncoder(WordTextEncoderConfig(vocab=vocab, width=32, depth=1, heads=2))
    return KinetoscopePipeline(vae, transformer, text, SamplingDefaults(num_inference_steps=3))


@pytest.fixture(scope="session")
def tiny_pipeline():
    """A KinetoscopePipeline of tiny random parts (see make_tiny_pipeline)."""
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_pipeline) -> Path:
    """A model folder (model_index.json + parts) of tiny random weights, for CLI tests."""
    directory = tmp_path_factory.mktemp("tiny-model")
    tiny_pipeline.save_pretrained(directory)
    return directory

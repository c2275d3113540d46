"""`eval caption-swap`: the loss gap when one caption attribute is swapped, on cached latents."""

from __future__ import annotations

import json

import pytest
import torch

from kinetoscope.data.latent_cache import vae_fingerprint, write_shard
from kinetoscope.evaluation.caption_swap import caption_swap_gaps
from kinetoscope.shapes.swaps import ATTRIBUTES, TWO_OBJECT_SWAPS, swapped_scene
from kinetoscope.shapes.spec import ObjectSpec, SceneSpec, canonical_caption


def _scenes() -> list[SceneSpec]:
    return [
        SceneSpec("black", (ObjectSpec("red", "circle", "large", "right", "slowly"),)),
        SceneSpec("gray", (ObjectSpec("blue", "square", "small", "up-left", "quickly"),)),
        SceneSpec("white", (ObjectSpec("green", "triangle", "small", "still", "slowly"),)),
        SceneSpec("black", (ObjectSpec("red", "circle", "large", "down", "slowly"), ObjectSpec("blue", "square", "small", "up", "quickly"))),
    ]


def test_swaps_change_exactly_one_attribute():
    moving, diagonal, still, two = _scenes()
    assert canonical_caption(swapped_scene(moving, "direction_sign")) == "A large red circle moves slowly to the left on a black background."
    assert swapped_scene(moving, "direction_axis").objects[0].direction == "down"
    assert swapped_scene(diagonal, "direction_sign").objects[0].direction == "down-right"
    assert swapped_scene(diagonal, "direction_axis").objects[0].direction == "up-right"
    for attribute in ("speed", "direction_sign", "direction_axis"):
        assert swapped_scene(still, attribute) is None
    assert all(swapped_scene(two, a) is None for a in ATTRIBUTES)
    for attribute in ("color", "shape", "size", "background"):
        new = swapped_scene(moving, attribute)
        changed = [k for k, v in new.objects[0].__dict__.items() if getattr(moving.objects[0], k) != v]
        assert changed == ([] if attribute == "background" else [attribute])
        assert (new.background != moving.background) == (attribute == "background")
    with pytest.raises(ValueError, match="unknown attribute"):
        swapped_scene(moving, "mood")


def test_two_object_exchanges_keep_the_words_and_move_them_between_objects():
    moving, _, still, two = _scenes()
    assert all(swapped_scene(moving, a) is None for a in TWO_OBJECT_SWAPS)
    exchanged = swapped_scene(two, "exchange_direction")
    assert [o.direction for o in exchanged.objects] == ["up", "down"]
    assert sorted(canonical_caption(exchanged).split()) == sorted(canonical_caption(two).split())
    assert canonical_caption(exchanged) != canonical_caption(two)
    colours = swapped_scene(two, "exchange_color")
    assert [(o.color, o.shape) for o in colours.objects] == [("blue", "circle"), ("red", "square")]
    assert [o.direction for o in swapped_scene(two, "both_direction_sign").objects] == ["up", "down"]
    assert [o.size for o in swapped_scene(two, "exchange_size").objects] == ["small", "large"]
    assert [o.speed for o in swapped_scene(two, "exchange_speed").objects] == ["quickly", "slowly"]
    with_still = SceneSpec("black", (two.objects[0], still.objects[0]))
    assert swapped_scene(with_still, "exchange_direction") is None
    assert swapped_scene(with_still, "exchange_speed") is None  # a still object's caption has no speed
    assert swapped_scene(with_still, "both_direction_sign") is None
    assert swapped_scene(with_still, "exchange_shape").objects[1].shape == "circle"


def test_a_model_blind_to_text_has_no_gap_and_one_that_reads_it_does(tiny_pipeline):
    torch.manual_seed(0)
    latents = torch.randn(4, 4, 3, 4, 4)
    transformer, text = tiny_pipeline.transformer, tiny_pipeline.text_encoder
    rows = caption_swap_gaps(transformer, text, latents, _scenes(), times=(0.5,))
    assert {r["attribute"] for r in rows} == set(ATTRIBUTES + TWO_OBJECT_SWAPS)
    by_attribute = {r["attribute"]: r for r in rows}
    assert by_attribute["color"]["clips"] == 3 and by_attribute["speed"]["clips"] == 2
    assert by_attribute["exchange_direction"]["clips"] == 1
    assert all(abs(r["gap"]) > 1e-7 for r in rows)  # this tiny model reads its text
    blind = type(transformer)(transformer.config)
    blind.load_state_dict(transformer.state_dict())
    with torch.no_grad():
        for block in blind.blocks:
            block.cross_attn.out.weight.zero_()
            block.cross_attn.out.bias.zero_()
    rows = caption_swap_gaps(blind.eval(), text, latents, _scenes(), times=(0.5, 0.9))
    assert all(r["gap"] == 0.0 and r["loss_true"] > 0 for r in rows)


def test_cli_prints_a_row_per_attribute_and_time(run_cli, tiny_model_dir, tiny_pipeline, tmp_path):
    scenes = _scenes()
    records = [{"text": canonical_caption(s), "scene": s.to_dict()} for s in scenes]
    write_shard(tmp_path / "cache" / "b0_00000.safetensors", torch.randn(4, 4, 3, 4, 4), records, vae_fingerprint(tiny_pipeline.vae))
    result = run_cli("eval", "caption-swap", "--model", tiny_model_dir, "--cache", tmp_path / "cache", "--clips", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["attribute", "clips"] and len(lines) == 1 + 4 * len(ATTRIBUTES + TWO_OBJECT_SWAPS)
    late = run_cli("eval", "caption-swap", "--model", tiny_model_dir, "--cache", tmp_path / "cache", "--clips", "2",
                   "--times", "0.95", "0.98", "--json")  # fmt: skip
    assert late.returncode == 0, late.stderr
    assert sorted({row["t"] for row in json.loads(late.stdout)}) == [0.95, 0.98]
    outside = run_cli("eval", "caption-swap", "--model", tiny_model_dir, "--cache", tmp_path / "cache", "--times", "1.0")
    assert outside.returncode == 2 and "--times" in outside.stderr and "Traceback" not in outside.stderr
    missing = run_cli("eval", "caption-swap", "--model", tiny_model_dir, "--cache", tmp_path / "nowhere")
    assert missing.returncode == 2 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr

"""One of the processes `torchrun --nproc_per_node N tests/ddp_worker.py RUN_DIR OUT [STOP_AT] [--fsdp]
[--lora BASE] [--compile]` starts for tests/test_distributed_training.py: the tiny DiT run of
test_dit_training (6 steps), trained data-parallel (with --fsdp: sharded; with --lora: rank-4 adapters
on the model folder BASE; with --compile: the transformer compiled), stopped after STOP_AT steps when
given; rank 0 saves the weights, the EMA and the logged losses to OUT."""

from __future__ import annotations

import sys

import torch

from kinetoscope.training import distributed
from kinetoscope.training.dit import train_dit
from test_dit_training import _buckets, _config

torch.set_num_threads(1)
world = distributed.init(torch.device("cpu"))
args = [a for a in sys.argv[1:] if a not in ("--fsdp", "--compile")]
lora = {}
if "--lora" in args:
    at = args.index("--lora")
    lora = {"init_from": args[at + 1], "lora_rank": 4}
    del args[at : at + 2]
stop_at = int(args[2]) if len(args) > 2 else None
config = _config(steps=6, checkpoint_every=3, fsdp="--fsdp" in sys.argv, compile="--compile" in sys.argv, **lora)
held = []  # the parameter values this process held while training (all, unless sharded)
shard = distributed.fully_shard


def recording_shard(module, *args):
    shard(module, *args)
    held.append(sum(p.to_local().numel() for p in module.parameters()))
    return module


distributed.fully_shard = recording_shard
result = train_dit(config, _buckets(), args[0], progress=False, stop_at=stop_at)
if world.main:
    whole = sum(p.numel() for p in result.denoiser.parameters())
    state = {"model": result.denoiser.state_dict(), "ema": result.ema.shadow, "losses": result.losses}
    torch.save(state | {"held": held[0] if held else whole, "whole": whole}, args[1])
distributed.finish()

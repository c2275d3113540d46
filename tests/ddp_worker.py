"""One of the processes `torchrun --nproc_per_node N tests/ddp_worker.py RUN_DIR OUT [STOP_AT]` starts
for tests/test_distributed_training.py: the tiny DiT run of test_dit_training (6 steps), trained
data-parallel, stopped after STOP_AT steps when given; rank 0 saves the weights, the EMA and the
logged losses to OUT."""

from __future__ import annotations

import sys

import torch

from kinetoscope.training import distributed
from kinetoscope.training.dit import train_dit
from test_dit_training import _buckets, _config

torch.set_num_threads(1)
world = distributed.init(torch.device("cpu"))
stop_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
result = train_dit(_config(steps=6, checkpoint_every=3), _buckets(), sys.argv[1], progress=False, stop_at=stop_at)
if world.main:
    torch.save({"model": result.denoiser.state_dict(), "ema": result.ema.shadow, "losses": result.losses}, sys.argv[2])
distributed.finish()

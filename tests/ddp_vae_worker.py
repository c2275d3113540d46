"""One of the processes `torchrun --nproc_per_node N tests/ddp_vae_worker.py RUN_DIR OUT` starts for
tests/test_distributed_training.py: a tiny VAE run (test_distributed_training.vae_config: uneven
shares, latent noise, a discriminator), trained data-parallel; rank 0 saves the weights, the
discriminator's and the logged losses to OUT."""

from __future__ import annotations

import sys

import torch

from kinetoscope.training import distributed
from kinetoscope.training.vae import train_vae
from vae_runs import small_config

torch.set_num_threads(1)


def vae_config():
    config = small_config(4, latent_noise=0.5, adversarial_weight=0.1, adversarial_start=1)
    config.mix.batch_size = 3  # two processes: shares of 2 and 1 clips
    return config


if __name__ == "__main__":
    world = distributed.init(torch.device("cpu"))
    result = train_vae(vae_config(), sys.argv[1], progress=False)
    if world.main:
        state = torch.load(sorted(__import__("pathlib").Path(sys.argv[1]).glob("step_*.pt"))[-1], weights_only=False)
        torch.save({"model": result.model.state_dict(), "disc": state["discriminator"], "losses": result.losses}, sys.argv[2])
    distributed.finish()

"""Training loops and what they share: checkpoints (``checkpoint``), the VAE's losses and loop (``losses``, ``vae``).

Models never know about training: optimizers, schedules, checkpoints and logging live here.
"""

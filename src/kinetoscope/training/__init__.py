"""Training loops and what they share: checkpoints (``checkpoint``), weight averaging (``ema``), the VAE's
losses and loop (``losses``, ``vae``), the DiT's loop (``dit``, ``dit_config``, one step in ``dit_step``) with
its given-frame masks (``frame_masks``), frozen-encoder caption states (``caption_cache``) and its optional
terms: decoded one-step loss (``decoded_loss``), caption ranking (``binding``), attention grounding and
the still-object loss weight (``grounding``).

Models never know about training: optimizers, schedules, checkpoints and logging live here.
"""

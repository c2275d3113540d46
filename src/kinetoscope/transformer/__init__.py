"""The diffusion transformer: a DiT over spacetime patch tokens, conditioned on time and text.

``config`` (hyperparameters and named sizes), ``rope`` (3D rotary positions), ``attention``
(QK-normed self- and cross-attention, packed-sequence masks), ``attention_tap`` (each block's
video-to-text queries and keys, for looking at or training the attention), ``embeddings`` (time and text),
``blocks`` (the adaLN-single block and output layer), ``model`` (the network and its two entry
points), ``grow`` (a trained model made deeper, predicting as before), ``lora`` (low-rank adapters
through peft: added, merged, saved and loaded). Depends on torch, einops and
:mod:`kinetoscope.patches` (``lora`` on peft, an extra); knows nothing of training.
"""

from kinetoscope.transformer.config import PRESETS, DiTConfig
from kinetoscope.transformer.model import DiffusionTransformer
from kinetoscope.transformer.rope import apply_rope, rope_axes, rope_frequencies

__all__ = [
    "PRESETS",
    "DiTConfig",
    "DiffusionTransformer",
    "apply_rope",
    "rope_axes",
    "rope_frequencies",
]

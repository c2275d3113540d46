"""kinetoscope: an open Sora-style video generation system.

Folders by concept: ``io`` (video files), ``shapes`` (the Shapes World: renderer, captions,
prompt upsampling, analyzer), ``vae`` (causal 3D VAE), ``patches`` (patchify, Patch n' Pack,
positions), ``transformer`` (the diffusion transformer), ``text`` (text encoders), ``diffusion``
(rectified-flow math and samplers), ``pipelines``, ``data`` (curation), ``training``, ``cli``.
"""

__version__ = "0.1.0"

"""Training data: clip sources (Shapes World renders, photo camera moves, lavfi test patterns) and the VAE's mix of them.

``camera_moves`` films bundled photos with a virtual camera, ``lavfi`` decodes FFmpeg's
synthetic sources, ``vae_mix`` draws deterministic mixed batches of images and videos.
"""

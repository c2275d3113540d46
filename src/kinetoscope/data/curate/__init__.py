"""Curation: a folder of raw video in, training clips with scores, captions and ``metadata.csv`` out.

One module per stage: ``inputs`` (what to read, which shard), ``probe`` (one decode pass that
feeds every per-frame analyser), ``scenes`` (PySceneDetect cuts, then clips of a bounded
length), ``motion`` (optical flow), ``quality`` (sharpness, exposure, blockiness, black and
solid frames, letterboxing), ``dedup`` (perceptual hashes), ``scorers`` (user models:
aesthetics, text overlay), ``captions`` (sidecar files or a vision-language model), ``clips``
(the cut clips written as mp4), ``table`` (the CSVs), ``runner`` (workers, resume, shards),
``filters`` and ``latents`` (score thresholds, and the VAE cache training reads).

OpenCV and PySceneDetect come with the ``curate`` extra; nothing here imports them at package
import, and :func:`kinetoscope.data.curate.deps.require` says which extra is missing.
"""

"""The Shapes World (``../shared/SHAPES_WORLD.md``): the embedded default world.

- ``spec``: the exact numbers and the scene description; ``render``: scenes to clips;
  ``dataset``: sample sets with ``metadata.csv``.
- ``vocabulary``, ``prompts``, ``attach``: prompt upsampling, free text to attributes and the
  canonical caption.
- ``segment``, ``track``, ``measure``, ``motion``, ``detect``, ``analyzer``: judging a clip
  against what a prompt asks for.
- ``swaps``, ``object_tokens``: ground truth for probing binding (captions with attributes swapped or
  exchanged; which tokens hold each object and which words name it).
"""

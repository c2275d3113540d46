"""The Shapes World (``../shared/SHAPES_WORLD.md``): the embedded default world.

``spec`` holds the exact numbers and the scene description, ``render`` draws clips,
``prompts`` (with ``vocabulary`` and ``attach``) turns free text into attributes and canonical
captions (prompt upsampling),
``analyzer`` judges a clip against what a prompt asks for, ``dataset`` writes sample sets.
"""

"""The list of subcommands, in the order ``kinetoscope --help`` shows them."""

from kinetoscope.cli import caption, data, demo, evaluate, info

REGISTRY = [
    demo.register,
    info.register,
    data.register,
    caption.register,
    evaluate.register,
]

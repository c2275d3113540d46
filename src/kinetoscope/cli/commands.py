"""The list of subcommands, in the order ``kinetoscope --help`` shows them."""

from kinetoscope.cli import caption, data, demo, evaluate, generate, info, reconstruct, train

REGISTRY = [
    demo.register,
    generate.register,
    info.register,
    data.register,
    caption.register,
    evaluate.register,
    train.register,
    reconstruct.register,
]

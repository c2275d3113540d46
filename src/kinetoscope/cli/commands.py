"""The list of subcommands, in the order ``kinetoscope --help`` shows them."""

from kinetoscope.cli import caption, connect, data, demo, edit, evaluate, extend, generate, info, reconstruct, train

REGISTRY = [
    demo.register,
    generate.register,
    extend.register,
    connect.register,
    edit.register,
    info.register,
    data.register,
    caption.register,
    evaluate.register,
    train.register,
    reconstruct.register,
]

"""The ``kinetoscope`` command line: thin subcommands that validate input and call the library."""

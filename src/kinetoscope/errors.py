"""The one exception type users see as a message instead of a traceback."""


class KinetoscopeError(Exception):
    """A problem with the user's input (a file, an argument), reported as one line.

    The CLI prints ``kinetoscope: error: <message>`` on stderr and exits with status 2.
    Messages name the offending input and say what is wrong with it.
    """

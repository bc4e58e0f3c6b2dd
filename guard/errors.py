"""Errors a user can act on: the CLI prints them as one line, never as a traceback."""


class GuardError(Exception):
    """A problem with the user's input, config or store, stated in one line.

    The message names what is wrong and where (file, line, field or key).
    """

"""Errors a user can act on: the CLI prints them as one line, never as a traceback."""


class GuardError(Exception):
    """A problem with the user's input, config or store, stated in one line.

    The message names what is wrong and where (file, line, field or key).
    """


def one_line(err: BaseException) -> str:
    """An exception's message on one line, shortened when very long."""
    message = " ".join(str(err).split()) or type(err).__name__
    return message if len(message) <= 300 else message[:297] + "..."

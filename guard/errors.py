"""Errors a user can act on: the CLI prints them as one line, never as a traceback; the one
formatter of an exception as one line and of a message about a place in a file."""


class GuardError(Exception):
    """A problem with the user's input, config or store, stated in one line.

    The message names what is wrong and where (file, line, field or key).
    """


def one_line(err: BaseException, *, first_line: bool = False) -> str:
    """An exception's message on one line (its type name if it has none), shortened to 300
    characters; with ``first_line``, only its first non-empty line (for libraries whose later
    lines are advice or tracebacks)."""
    text = str(err)
    if first_line:
        text = next((line for line in text.splitlines() if line.strip()), "")
    message = " ".join(text.split()) or type(err).__name__
    return message if len(message) <= 300 else message[:297] + "..."


def located(where, message: str, line: int | None = None) -> str:
    """The one form of a message about a place in a file: "WHERE:LINE: MESSAGE", or
    "WHERE: MESSAGE" when the line is unknown. ``where`` is a path, a file name or a
    "name:line" location; ``message`` starts with the field or key when there is one."""
    return f"{where}: {message}" if line is None else f"{where}:{line}: {message}"

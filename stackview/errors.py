"""Exception types shared by the library, the CLI and the GUI.

``UsageError`` is raised for bad input a user can fix (unknown material, absurd parameter,
unreadable file); its message is one sentence that the CLI prints (exit code 2) and the GUI
shows in a message box (both through :func:`one_sentence`). It subclasses ``ValueError`` so
library callers can catch either.
"""


class UsageError(ValueError):
    """Bad input that the user can correct; the message is one actionable sentence."""


class Cancelled(Exception):
    """Raised inside a job when its cancellation token has been set."""


def one_sentence(exc: BaseException) -> str:
    """The exception's message as a single sentence (first line, ends with a full stop)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    first = text.split(" ", 1)[0].rstrip(".,;:!?")
    if first.isalpha() and first.islower():  # a word, not a file or material name (mos2.zarr)
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."

"""Exception types shared by the library, the CLI and the GUI.

``UsageError`` is raised for bad input a user can fix (unknown material, absurd parameter,
unreadable file); its message is one sentence that the CLI prints (exit code 2) and the GUI
shows in a message box. It subclasses ``ValueError`` so library callers can catch either.
"""


class UsageError(ValueError):
    """Bad input that the user can correct; the message is one actionable sentence."""


class Cancelled(Exception):
    """Raised inside a job when its cancellation token has been set."""

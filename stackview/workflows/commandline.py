"""Command lines of jobs: argv lists as the text a user can paste, and values as argv words.

The text recorded as provenance is made here from the argv given to :func:`stackview.cli.main`
(never from ``sys.argv`` inside the library), and the wizard shows the same text for its jobs.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def command_text(argv: Iterable) -> str:
    """``stackview`` followed by the arguments, quoted for a POSIX shell."""
    words = [word(a) for a in argv]
    return "stackview " + shlex.join(words) if words else "stackview"


def word(value) -> str:
    """One argv word: floats in their shortest exact form (so they parse back to the same
    number), everything else as ``str``."""
    if isinstance(value, bool):
        raise TypeError("booleans are flags, not values")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def words(*values) -> list[str]:
    return [word(v) for v in values]

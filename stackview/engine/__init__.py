"""Job API shared by the CLI and the GUI: progress events and cancellation tokens.

The plain-Python side (``jobs``) must not import Qt; the worker mechanism of the GUI lives in
:mod:`stackview.engine.qt` (superqt workers carrying :class:`Progress` events).
"""

from stackview.engine.jobs import (
    CancelToken,
    Progress,
    ProgressCallback,
    as_progress,
    null_progress,
    report,
)

__all__ = ["CancelToken", "Progress", "ProgressCallback", "as_progress", "null_progress",
           "report"]

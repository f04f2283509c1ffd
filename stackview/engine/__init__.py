"""Job API shared by the CLI and the GUI: progress callbacks and cancellation tokens.

The plain-Python side (``jobs``) must not import Qt; the QThread adapters live in
``stackview.engine.qt*`` modules.
"""

from stackview.engine.jobs import CancelToken, ProgressCallback, null_progress

__all__ = ["CancelToken", "ProgressCallback", "null_progress"]

"""QThread adapter for the plain-Python jobs of :mod:`stackview.engine.jobs`.

A job is any callable ``fn(progress, cancel)`` (the same functions the CLI runs). :class:`Job`
runs it in its own ``QThread`` and turns its progress calls, its return value and its
exceptions into Qt signals, which Qt delivers in the GUI thread (queued connections), so
widgets are only ever touched from the GUI thread. Cancellation is cooperative: ``cancel()``
sets the job's :class:`~stackview.engine.jobs.CancelToken`, and the job stops at its next
``cancel.check()`` (the SPM loop checks between batches, i.e. well within a second).

Only this module and ``stackview.gui`` import Qt.
"""

from __future__ import annotations

import gc
import logging
import traceback
from collections.abc import Callable

from PySide6.QtCore import QThread, Signal

from stackview.engine import qt_compat
from stackview.engine.jobs import CancelToken
from stackview.errors import Cancelled, UsageError

log = logging.getLogger(__name__)
qt_compat.apply()  # before any signal is emitted from Python
_collector = None


def collect_garbage_in_gui_thread() -> None:
    """Run Python's cyclic garbage collector only in the GUI thread, from a timer.

    Left automatic, the collector runs in whichever thread allocates when a threshold is
    crossed — often a job's worker — and a Qt object collected there is destroyed off the GUI
    thread: the worker deadlocked in ``QObject::~QObject`` waiting for the GIL (seen in the
    wizard test after a closed wizard's pages became garbage during the next job's checkpoint).
    pyqtgraph's collector disables the automatic one and collects on a GUI-thread timer."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        class GuiThreadCollector(GarbageCollector):
            def check(self) -> None:
                if gc.isenabled():  # a library switched it back on; don't leave it on
                    gc.disable()
                super().check()

        _keep_dask_from_enabling_gc()
        _collector = GuiThreadCollector(interval=0.5)


def _keep_dask_from_enabling_gc() -> None:
    """``dask.utils.disable_gc`` remembers whether the collector was on when the decorator was
    created (at import, when it was) and switches it on after every call, so slicing any dask
    array (zarr datasets, abTEM) re-enabled automatic collection in worker threads — the
    deadlock above, which hung CI. Remember the state on entry instead, as intended."""
    try:
        from dask.utils import disable_gc
    except ImportError:  # pragma: no cover (dask is a dependency)
        return

    def __enter__(self):  # noqa: N807
        self._gc_enabled = gc.isenabled()
        gc.disable()
        return self

    disable_gc.__enter__ = __enter__


def describe_error(exc: BaseException, what: str) -> str:
    """One sentence for a message box: the library's own sentence for expected errors
    (bad input), a generic one naming the job for anything else (a bug)."""
    from stackview.errors import one_sentence

    if isinstance(exc, (UsageError, ValueError, OSError)):
        return one_sentence(exc)
    return f"{what} failed unexpectedly ({type(exc).__name__}); the details say where."


class Job(QThread):
    """Run ``fn(progress=..., cancel=...)`` in a worker thread.

    Signals
    -------
    progressed(done, total, message)
        Forwarded from the job's progress callback.
    succeeded(result)
        The job's return value.
    failed(sentence, details)
        One sentence for the user and the traceback for "Show details".
    cancelled()
        The job stopped because :meth:`cancel` was called.
    """

    progressed = Signal(int, int, str)
    succeeded = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, fn: Callable, name: str = "job", parent=None) -> None:
        collect_garbage_in_gui_thread()  # before any worker runs Python
        super().__init__(parent)
        self.fn = fn
        self.name = name
        self.token = CancelToken()
        self.setObjectName(name)

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation check (thread-safe)."""
        self.token.cancel()

    def _progress(self, done: int, total: int, message: str = "") -> None:
        self.progressed.emit(int(done), int(total), str(message))

    def run(self) -> None:  # runs in the worker thread
        try:
            result = self.fn(progress=self._progress, cancel=self.token)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # every error becomes a message, never a crash
            log.debug("%s failed", self.name, exc_info=True)
            self.failed.emit(describe_error(exc, self.name), traceback.format_exc())
        else:
            if self.token.cancelled:
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)

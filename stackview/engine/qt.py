"""The one worker mechanism of the GUI: superqt workers (as napari) around plain jobs.

A job is any callable ``fn(progress, cancel)`` (the same functions the CLI runs).
:func:`start_job` runs it on a :class:`Job`, a superqt ``WorkerBase`` in Qt's thread pool, and
turns its progress calls (old ``(done, total, message)`` calls or
:class:`~stackview.engine.jobs.Progress` events, both as events), its return value and its
exceptions into signals that Qt delivers in the GUI thread, so widgets are only ever touched
from there. Cancellation is cooperative: :meth:`Job.cancel` sets the job's
:class:`~stackview.engine.jobs.CancelToken` and the job stops at its next ``cancel.check()``.

Lifetimes are explicit, so no workaround of the garbage collector is needed:

- the job's signals object (the only ``QObject`` of a job) is a child of the application:
  Python dropping its references in the pool thread never destroys it; it is deleted with
  ``deleteLater`` in the GUI thread once the job's last signal was handled;
- the callbacks are called by a receiver object that is the owner's child, so a closed and
  deleted owner is never called back (Qt disconnects a destroyed receiver) while its job runs
  to its end;
- :func:`stop_jobs` (called by an owner when it closes) cancels its jobs and waits for them;
- top-level windows that end (the wizard) delete themselves on close, so none of them is left
  to Python's collector, which may run in any thread.

Only this module and ``stackview.gui`` import Qt.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from superqt.utils import WorkerBase
from superqt.utils._qthreading import WorkerBaseSignals

from stackview.engine.jobs import CancelToken, Progress, as_progress
from stackview.errors import Cancelled, UsageError

log = logging.getLogger(__name__)

#: the pool runs the window's short jobs beside a long training step of the wizard
MIN_POOL_THREADS = 8


def describe_error(exc: BaseException, what: str) -> str:
    """One sentence for a message box: the library's own sentence for expected errors
    (bad input), a generic one naming the job for anything else (a bug)."""
    from stackview.errors import one_sentence

    if isinstance(exc, (UsageError, ValueError, OSError)):
        return one_sentence(exc)
    return f"{what} failed unexpectedly ({type(exc).__name__}); the details say where."


class JobSignals(WorkerBaseSignals):
    """The signals of a :class:`Job` (superqt's ``started``/``finished`` and ours)."""

    progressed = Signal(object)  # a Progress event
    succeeded = Signal(object)  # the job's return value
    failed = Signal(str, str)  # one sentence, the traceback
    cancelled = Signal()


class Job(WorkerBase):
    """Run ``fn(progress=..., cancel=...)`` in a pool thread (superqt ``WorkerBase``).

    Signals (on :attr:`signals`, also reachable as attributes of the job)
    ---------------------------------------------------------------------
    progressed(event)
        A :class:`~stackview.engine.jobs.Progress` for every progress call of the job.
    succeeded(result)
        The job's return value.
    failed(sentence, details)
        One sentence for the user and the traceback for "Show details".
    cancelled()
        The job stopped because :meth:`cancel` was called.
    finished()
        After any of the three above.
    """

    def __init__(self, fn: Callable, name: str = "job") -> None:
        super().__init__(SignalsClass=JobSignals)
        self.fn = fn
        self.name = name
        self.token = CancelToken()
        self._done = threading.Event()
        self._started = False
        self.setAutoDelete(False)  # Python owns the runnable; the pool only runs it
        # C++ owns the QObject (never freed off the GUI thread); the reaper deletes it
        self.signals.setParent(_reaper())
        self.signals.setObjectName(name)
        self.signals._finished.connect(_reaper().reap)

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation check (thread-safe)."""
        self.token.cancel()
        self.quit()

    def _progress(self, *args, **kwargs) -> None:
        self.progressed.emit(as_progress(*args, **kwargs))

    _progress.accepts_progress_events = True  # type: ignore[attr-defined]

    def work(self) -> None:  # runs in the pool thread
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

    def run(self) -> None:  # the pool thread
        """superqt's ``run`` without its warning capture: that swaps the process-wide
        ``warnings.showwarning`` from each worker, and two jobs overlapping restore each
        other's hook, leaving one that emits on a deleted job's signals."""
        try:
            self._running = True
            self.started.emit()
            self.work()
            self._running = False
            self.finished.emit()
            self._finished.emit(self)
        finally:
            self._running = False
            self._done.set()

    def start(self) -> None:
        self._started = True
        pool = QThreadPool.globalInstance()
        if pool.maxThreadCount() < MIN_POOL_THREADS:
            pool.setMaxThreadCount(MIN_POOL_THREADS)
        super().start()

    def wait(self, timeout_ms: int | None = None) -> bool:
        """Block until the job has emitted its last signal (True) or ``timeout_ms`` passed.
        A job that was never started counts as done."""
        if not self._started:
            return True
        return self._done.wait(None if timeout_ms is None else timeout_ms / 1000)

    def done(self) -> bool:
        return self._done.is_set()


class _Reaper(QObject):
    """Deletes each job's signals object in the GUI thread after its last signal (a child of
    the application: it outlives every window)."""

    @Slot(object)
    def reap(self, job: Job) -> None:
        job.wait(1000)  # its last emit has returned (microseconds after this signal)
        job.signals.deleteLater()


_REAPER: _Reaper | None = None


def _reaper() -> _Reaper:
    global _REAPER
    if _REAPER is None:
        from PySide6.QtCore import QCoreApplication

        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("jobs need a QApplication")
        _REAPER = _Reaper(app)
    return _REAPER


class _Receiver(QObject):
    """Calls a job's callbacks in the GUI thread; a child of the job's owner, so a deleted
    owner is never called back (Qt disconnects destroyed receivers)."""

    def __init__(self, owner: QObject, job: Job, on_result, on_error, on_cancel, on_progress,
                 on_finished) -> None:
        super().__init__(owner)
        self.job = job
        self.callbacks = (on_result, on_error, on_cancel, on_progress, on_finished)
        job.succeeded.connect(self.succeeded)
        job.failed.connect(self.failed)
        job.cancelled.connect(self.cancelled)
        job.progressed.connect(self.progressed)
        job.signals._finished.connect(self.finished)

    @Slot(object)
    def succeeded(self, result) -> None:
        if self.callbacks[0] is not None:
            self.callbacks[0](result)

    @Slot(str, str)
    def failed(self, sentence: str, details: str) -> None:
        if self.callbacks[1] is not None:
            self.callbacks[1](sentence, details)

    @Slot()
    def cancelled(self) -> None:
        if self.callbacks[2] is not None:
            self.callbacks[2]()

    @Slot(object)
    def progressed(self, event: Progress) -> None:
        if self.callbacks[3] is not None:
            self.callbacks[3](event)

    @Slot(object)
    def finished(self, _worker) -> None:
        job, on_finished = self.job, self.callbacks[4]
        self.callbacks = (None,) * 5
        self.job = None
        try:
            if on_finished is not None:
                on_finished(job)
        finally:
            self.deleteLater()


def start_job(owner: QObject, fn: Callable, name: str, on_result: Callable | None = None, *,
              on_error: Callable | None = None, on_cancel: Callable | None = None,
              on_progress: Callable | None = None,
              on_finished: Callable | None = None) -> Job:
    """The one factory: run ``fn(progress, cancel)`` for ``owner`` (a widget in the GUI
    thread) and call back there: ``on_result(value)``, ``on_error(sentence, details)``,
    ``on_cancel()``, ``on_progress(event)`` and, after any of them, ``on_finished(job)``.

    The owner keeps its running jobs in ``owner.jobs`` (a set, created if missing) until their
    last signal was handled; :func:`stop_jobs` cancels and joins them."""
    job = Job(fn, name)
    jobs = _jobs_of(owner)
    jobs.add(job)

    def finished(job: Job) -> None:
        jobs.discard(job)
        if on_finished is not None:
            on_finished(job)

    _Receiver(owner, job, on_result, on_error, on_cancel, on_progress, finished)
    job.start()
    return job


def _jobs_of(owner) -> set:
    jobs = getattr(owner, "jobs", None)
    if jobs is None:
        jobs = set()
        owner.jobs = jobs
    return jobs


def stop_jobs(owner, timeout_ms: int = 5000) -> None:
    """Cancel the owner's running jobs and wait for them (before the owner closes: a job must
    not outlive the widgets it reports to)."""
    jobs = list(_jobs_of(owner))
    for job in jobs:
        job.cancel()
    for job in jobs:
        job.wait(timeout_ms)

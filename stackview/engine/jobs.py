"""Progress reporting and cooperative cancellation for long jobs (no Qt here).

A job is a plain function that accepts ``progress`` (a callable ``progress(done, total, message)``)
and ``cancel`` (a :class:`CancelToken`); it calls ``cancel.check()`` between units of work, which
raises :class:`stackview.errors.Cancelled` once cancellation was requested. The CLI wraps jobs with
a text progress bar, the GUI with QThread workers, tests with plain lambdas.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol

from stackview.errors import Cancelled


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def null_progress(done: int, total: int, message: str = "") -> None:
    """A progress callback that ignores everything."""


class CancelToken:
    """Thread-safe cancellation flag; ``check()`` raises ``Cancelled`` once ``cancel()`` ran."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("the job was cancelled")


class TextProgress:
    """A one-line progress bar on stderr for the CLI (silent when stderr is not a terminal
    unless ``force`` is set, so logs and CI output stay readable)."""

    def __init__(self, label: str, force: bool = False, stream=None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self.width = width
        self._start = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * self.width)
        elapsed = now - self._start
        eta = f" eta {elapsed / frac - elapsed:5.0f}s" if 0 < frac < 1 else ""
        self.stream.write(
            f"\r{self.label} [{bar:<{self.width}}] {done}/{total}{eta} {message[:30]:<30}"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()

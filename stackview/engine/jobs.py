"""Progress reporting and cooperative cancellation for long jobs (no Qt here).

A job is a plain function that accepts ``progress`` and ``cancel`` (a :class:`CancelToken`); it
calls ``cancel.check()`` between units of work, which raises :class:`stackview.errors.Cancelled`
once cancellation was requested. ``progress`` is called either the old way,
``progress(done, total, message)``, or with one structured :class:`Progress` event
(``progress(Progress(...))``, e.g. with a training loss in ``metrics``); :func:`as_progress`
turns either into a :class:`Progress`, and :func:`report` sends an event to a callback of either
kind, so a plain ``(done, total, message)`` callable of a library caller keeps working. The CLI
wraps jobs with a text progress bar, the GUI with the workers of :mod:`stackview.engine.qt`,
tests with plain lambdas.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from stackview.errors import Cancelled


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def null_progress(*args, **kwargs) -> None:
    """A progress callback that ignores everything (old-style calls and events)."""


@dataclass(frozen=True)
class Progress:
    """One progress event of a job.

    Attributes
    ----------
    done, total
        Units of work done of ``total`` (``total`` 0: unknown, a busy indicator).
    message
        A few words for a status line ("reading the lattice", "loss 0.12").
    stage
        Which part of the job reports (free text; "" when the job has one stage).
    metrics
        Numbers the stage reports beside its count, e.g. ``{"loss": 0.12}`` for a training
        step (a wizard draws its loss curve from them).
    """

    done: int = 0
    total: int = 0
    message: str = ""
    stage: str = ""
    metrics: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1]; None when the total is unknown."""
        if self.total <= 0:
            return None
        return min(max(self.done / self.total, 0.0), 1.0)


#: "loss 0.123" (the trainers' messages): read into ``metrics["loss"]`` for callers that sent
#: no event, so the wizard never parses strings itself
_LOSS = re.compile(r"^loss (\S+)")


def as_progress(*args, **kwargs) -> Progress:
    """A :class:`Progress` from either call style: ``(event)`` or ``(done, total, message)``."""
    if len(args) == 1 and not kwargs and isinstance(args[0], Progress):
        return args[0]
    names = ("done", "total", "message")
    values = dict(zip(names, args, strict=False))
    values.update({k: v for k, v in kwargs.items() if k in names})
    done, total = int(values.get("done", 0)), int(values.get("total", 0))
    message = str(values.get("message", ""))
    metrics = {}
    match = _LOSS.match(message)
    if match:
        try:
            loss = float(match.group(1))
        except ValueError:
            loss = math.nan
        if math.isfinite(loss):
            metrics["loss"] = loss
    return Progress(done, total, message, metrics=metrics)


def accepts_events(callback) -> bool:
    """Whether ``callback`` takes :class:`Progress` events (it says so with an
    ``accepts_progress_events = True`` attribute); plain callables get ``(done, total,
    message)``."""
    return bool(getattr(callback, "accepts_progress_events", False))


def report(callback, event: Progress) -> None:
    """Send ``event`` to a progress callback of either kind (library code that reports
    structured progress calls this, so the CLI's and older callers' callables keep working)."""
    if accepts_events(callback):
        callback(event)
    else:
        callback(event.done, event.total, event.message)


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

    accepts_progress_events = True

    def __call__(self, *args, **kwargs) -> None:
        event = as_progress(*args, **kwargs)
        done, total, message = event.done, event.total, event.message
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

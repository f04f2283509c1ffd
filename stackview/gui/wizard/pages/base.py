"""The wizard pages' common part: :class:`StepPage` (an error line, and a runner with progress,
cancel and the equivalent command line) and small helpers.

Each page reads its settings from the :class:`~stackview.gui.wizard.project.Project` when shown,
validates them on *Next* with one sentence the user can act on (shown in red on the page), and
saves them. Pages with a heavy step run it with :func:`stackview.engine.qt.start_job` (the one
worker mechanism of the application: the window never blocks), show its
:class:`~stackview.engine.jobs.Progress` events, can cancel it, and show the equivalent
``stackview ...`` command line.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWizardPage,
)

from stackview.engine.jobs import Progress
from stackview.engine.qt import Job, describe_error, start_job, stop_jobs
from stackview.errors import one_sentence
from stackview.gui.wizard.project import Project


def _spin(lo, hi, value, decimals=None, step=None, suffix=""):
    box = QSpinBox() if decimals is None else QDoubleSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setValue(value)
    if step:
        box.setSingleStep(step)
    if suffix:
        box.setSuffix(suffix)
    return box


def _set_aside(folder: Path) -> Path:
    """Rename ``folder`` to ``folder.previous-N`` (a new run never deletes an old one)."""
    n = 1
    while (target := folder.with_name(f"{folder.name}.previous-{n}")).exists():
        n += 1
    folder.rename(target)
    return target


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StepPage(QWizardPage):
    """A page with an error line, and optionally a job runner with progress, cancel and the
    equivalent command line."""

    step = ""

    def __init__(self, project: Project, title: str, subtitle: str = "") -> None:
        super().__init__()
        self.project = project
        self.setTitle(title)
        if subtitle:
            self.setSubTitle(subtitle)
        self.layout_ = QVBoxLayout(self)
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        self.job: Job | None = None
        self.jobs: set[Job] = set()
        self.last_error = ""

    # --- errors --------------------------------------------------------------------------
    def fail(self, sentence: str) -> bool:
        self.last_error = sentence
        self.error.setStyleSheet("color: #c0392b")
        self.error.setText(sentence)
        return False

    def clear_error(self) -> None:
        self.last_error = ""
        self.error.setText("")

    def validatePage(self) -> bool:  # noqa: N802 (Qt)
        import copy

        before = copy.deepcopy(self.project.data.get(self.step))
        try:
            ok = self.check_and_save()
        except (ValueError, OSError) as exc:
            return self.fail(one_sentence(exc))
        if ok is False:
            return False
        self.clear_error()
        if self.project.data.get(self.step) != before:
            self.project.mark_done(self.step, False)  # later results depended on the old values
        self.project.mark_done(self.step)
        return True

    def check_and_save(self) -> bool | None:
        """Validate the widgets and save them into the project (raise or return False)."""
        return True

    # --- jobs ----------------------------------------------------------------------------
    def add_runner(self, run_text: str = "Run", resumable: bool = False) -> None:
        row = QHBoxLayout()
        self.run_button = QPushButton(run_text)
        self.resume_button = QPushButton("Resume") if resumable else None
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel()
        row.addWidget(self.run_button)
        if self.resume_button:
            row.addWidget(self.resume_button)
            self.resume_button.clicked.connect(lambda: self.start(resume=True))
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        self.layout_.addLayout(row)
        self.layout_.addWidget(self.status)
        self.command = QPlainTextEdit()
        self.command.setReadOnly(True)
        self.command.setMaximumHeight(70)
        self.command.setToolTip("The same step from a terminal, e.g. on a GPU machine")
        self.layout_.addWidget(QLabel("Equivalent command line:"))
        self.layout_.addWidget(self.command)
        self.run_button.clicked.connect(lambda: self.start(resume=False))
        self.cancel_button.clicked.connect(self.cancel)

    def running(self) -> bool:
        return self.job is not None  # cleared when its last signal has been handled

    def run_job(self, fn, name: str, on_done) -> Job:
        """Run ``fn(progress, cancel)`` for this page; ``on_done(result)`` on success."""
        self.clear_error()
        holder: list[Job] = []

        def finished(result, on_done=None):
            self._finished(holder[0], on_done, result)

        job = start_job(self, fn, name,
                        on_result=lambda result: finished(result, on_done),
                        on_error=lambda sentence, details: finished(sentence),
                        on_cancel=lambda: finished(None),
                        on_progress=self._progressed)
        holder.append(job)
        self.job = job
        self._set_busy(True)
        self.status.setText(f"{name}…")
        return job

    def _progressed(self, event: Progress) -> None:
        self.progress.setMaximum(max(1, event.total))
        self.progress.setValue(event.done)
        self.status.setText(event.message)
        self.on_progress(event)

    def on_progress(self, event: Progress) -> None:
        """Live updates of a running step (previews, loss curves)."""

    def _finished(self, job: Job, on_done, result) -> None:
        job.wait()  # its last signals are on their way: the page is idle from here
        if self.job is job:
            self.job = None
        self._set_busy(False)
        if on_done is not None:
            try:
                on_done(result)
            except Exception as exc:  # noqa: BLE001  (a message, never a crash)
                self.fail(describe_error(exc, self.title()))
        elif isinstance(result, str):
            self.fail(result)
            self.status.setText("failed")
        else:
            self.status.setText("cancelled — press Resume (or Run) to continue")
        self.completeChanged.emit()

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        if self.resume_button:
            self.resume_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.completeChanged.emit()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def stop_and_wait(self) -> None:
        """Cancel a running job and wait for it (closing the wizard)."""
        if self.jobs:
            stop_jobs(self, timeout_ms=600_000)
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.processEvents()  # deliver its last signal (saves the state)

    def start(self, resume: bool = False) -> None:
        raise NotImplementedError

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return not self.running()

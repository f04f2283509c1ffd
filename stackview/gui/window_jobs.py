"""The main window's jobs: one call, :meth:`WindowJobs.start_job`, on the application's one
worker mechanism (:func:`stackview.engine.qt.start_job`), with the status bar's progress."""

from __future__ import annotations

from stackview.engine.jobs import Progress
from stackview.engine.qt import Job, start_job, stop_jobs
from stackview.gui.errors import show_error


class WindowJobs:
    """Mixed into :class:`~stackview.gui.main_window.MainWindow` (needs ``status_text``,
    ``progress``, ``spm`` and ``analysis_job``)."""

    def start_job(self, fn, name: str, on_result, show_progress: bool = True) -> Job:
        """Run ``fn(progress, cancel)`` in a worker; results and errors come back here."""
        if show_progress:
            self.progress.setRange(0, 0)
            self.progress.show()
            self.status_text.setText(f"{name}…")
        return start_job(
            self, fn, name, on_result,
            on_error=lambda sentence, details: show_error(self, sentence, details),
            on_cancel=lambda: self.status_text.setText(f"{name} cancelled."),
            on_progress=self._progress if show_progress else None,
            on_finished=self._job_finished)

    def _job_finished(self, job: Job) -> None:
        if job is self.analysis_job:
            self.analysis_job = None
            self.spm.set_running(False)
        if not self.jobs:
            self.progress.hide()

    def _progress(self, event: Progress) -> None:
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(event.done)
        self.progress.setFormat(f"%v/%m {event.message}")

    def busy(self) -> bool:
        return bool(self.jobs)

    def stop_jobs(self) -> None:
        """Cancel the running jobs and wait for them (closing: a job must not outlive the
        widgets it reports to)."""
        stop_jobs(self)

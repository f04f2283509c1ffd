"""The model-training wizard: a ``QWizard`` over a project folder (Tools → Train a model…)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QWizard

from stackview.gui.wizard import pages
from stackview.gui.wizard.project import STEPS, Project

PAGE_CLASSES = (pages.MaterialPage, pages.ImagingPage, pages.ImagesPage, pages.SelectionPage,
                pages.StylePage, pages.DatasetPage, pages.RegressorPage, pages.EvaluationPage,
                pages.FinishPage)


class TrainingWizard(QWizard):
    """Guided training of a model for a new material; state in ``project_dir``.

    Opening a folder that holds a project resumes at its first unfinished step.

    Signals
    -------
    modelRegistered(path)
        The bundle was installed in the user's model library (path without suffix).
    """

    modelRegistered = Signal(str)

    def __init__(self, project_dir: str | Path, parent=None) -> None:
        super().__init__(parent)
        self.project = Project.open(project_dir)
        self.setWindowTitle(f"Train a model — {self.project.folder.name}")
        # a closed wizard is deleted by Qt in the GUI thread (explicit lifetime): its pages are
        # never left to Python's collector, which may run in a job's thread
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.pages: dict[str, pages.StepPage] = {}
        for step, cls in zip(STEPS, PAGE_CLASSES, strict=True):
            page = cls(self.project)
            self.pages[step] = page
            self.setPage(STEPS.index(step), page)
        self.pages["finish"].registered.connect(self.modelRegistered)
        if parent is not None:  # the main window closing must not kill a running step
            parent.installEventFilter(self)
        self.resume()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt)
        if event.type() == QEvent.Type.Close and obj is self.parent():
            self.stop_jobs()
        return False

    def stop_jobs(self) -> None:
        """Cancel a running step and wait for it (it saves a checkpoint for Resume)."""
        for page in self.pages.values():
            page.stop_and_wait()

    def page_of(self, step: str) -> pages.StepPage:
        return self.pages[step]

    def current_step(self) -> str:
        return STEPS[self.currentId()] if self.currentId() >= 0 else STEPS[0]

    def resume(self) -> None:
        """Go forward through the finished steps (their pages validate the saved state)."""
        self.restart()
        target = STEPS.index(self.project.resume_step())
        while self.currentId() < target:
            before = self.currentId()
            self.next()
            if self.currentId() == before:  # a saved step no longer validates: stop there
                break

    def done(self, result: int) -> None:
        self.stop_jobs()
        super().done(result)


def open_training_wizard(parent=None) -> TrainingWizard | None:
    """Ask for a project folder (new or existing) and show the wizard (non-modal)."""
    folder = QFileDialog.getExistingDirectory(parent, "Project folder (new or to resume)")
    if not folder:
        return None
    wizard = TrainingWizard(folder, parent)
    wizard.show()
    return wizard

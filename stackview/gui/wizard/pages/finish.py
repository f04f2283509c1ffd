"""The Finish page: registering the model in the user's library."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
)

from stackview.errors import one_sentence
from stackview.gui.wizard import runner
from stackview.gui.wizard.pages.base import StepPage
from stackview.gui.wizard.project import Project


class FinishPage(StepPage):
    step = "finish"
    registered = Signal(str)

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Finish",
                         "Register the model in your library; it is selectable in the main "
                         "window at once.")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.register_button = QPushButton("Register in my model library")
        self.register_button.clicked.connect(self.register)
        self.layout_.addWidget(self.summary)
        self.layout_.addWidget(self.register_button)
        self.layout_.addWidget(self.error)
        self.layout_.addStretch(1)
        self.setFinalPage(True)

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        m = self.project["material"]
        metrics = self.project["evaluation"]["metrics"]
        acc = dict(runner.accuracy_rows(metrics)) if metrics else {}
        line = acc.get("ΔD mean") or acc.get("Δθ mean") or "not evaluated"
        installed = self.project["finish"]["installed"]
        self.summary.setText(
            f"Model {runner.bundle_stem(self.project).name}: {m['name']} {m['task']}, "
            f"{m['layers']} layers; mean error on held-out data {line}."
            + (f"\nRegistered: {installed}" if installed else ""))

    def register(self) -> None:
        try:
            target = runner.install(self.project)
        except (ValueError, OSError) as exc:
            self.fail(one_sentence(exc))
            return
        self.clear_error()
        self.project.update("finish", installed=str(target))
        self.project.mark_done("finish")
        self.initializePage()
        self.registered.emit(str(target))
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return bool(self.project["finish"]["installed"])

    def check_and_save(self):
        if not self.project["finish"]["installed"]:
            return self.fail("Press ‘Register in my model library’ first.")
        return True

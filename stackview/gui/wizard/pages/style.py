"""The Style page: DRIT style training (resumable), or the physics noise model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
)

from stackview.gui.wizard import runner
from stackview.gui.wizard.pages.base import StepPage, _set_aside, _spin
from stackview.gui.wizard.project import Project


class StylePage(StepPage):
    step = "style"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Style training (DRIT)",
                         "Learn your microscope's look. Hours on a CPU: use the command line on "
                         "a GPU machine, or skip it and use the physics noise model.")
        form = QFormLayout()
        self.skip = QCheckBox("Skip style training (physics noise model instead)")
        self.config = QComboBox()
        self.config.addItems(["cpu", "paper", "tiny"])
        self.iterations = _spin(0, 1_000_000, 0)
        self.iterations.setSpecialValueText("preset's")
        self.image_px = _spin(0, 2048, 0)
        self.image_px.setSpecialValueText("preset's")
        form.addRow(self.skip)
        form.addRow("Network size", self.config)
        form.addRow("Iterations", self.iterations)
        form.addRow("Training patch (px)", self.image_px)
        self.layout_.addLayout(form)
        row = QHBoxLayout()
        self.preview = QLabel("no preview yet")
        self.preview.setMinimumSize(200, 120)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.losses = pg.PlotWidget()
        self.losses.setLabel("bottom", "iteration")
        self.losses.setLabel("left", "loss")
        self.losses.addLegend()
        row.addWidget(self.preview, 1)
        row.addWidget(self.losses, 1)
        self.layout_.addLayout(row, 1)
        self.add_runner("Train", resumable=True)
        self.layout_.addWidget(self.error)
        self.skip.toggled.connect(self._skip_toggled)
        for w in (self.config.currentTextChanged, self.iterations.valueChanged,
                  self.image_px.valueChanged):
            w.connect(lambda *_: self._show_command())

    def _settings(self) -> None:
        self.project.update("style", skip=self.skip.isChecked(), config=self.config.currentText(),
                            iterations=self.iterations.value(), image_px=self.image_px.value())

    def _show_command(self) -> None:
        st = self.project["style"]
        saved = dict(st)
        st.update(config=self.config.currentText(), iterations=self.iterations.value(),
                  image_px=self.image_px.value())
        _, command = runner.style_job(self.project)
        st.clear()
        st.update(saved)
        self.command.setPlainText(command)

    def _skip_toggled(self, on: bool) -> None:
        for w in (self.config, self.iterations, self.image_px, self.run_button,
                  self.resume_button):
            w.setEnabled(not on)
        self.completeChanged.emit()

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        st = self.project["style"]
        self.skip.setChecked(bool(st["skip"]))
        self.config.setCurrentText(st["config"])
        self.iterations.setValue(int(st["iterations"]))
        self.image_px.setValue(int(st["image_px"]))
        self._skip_toggled(self.skip.isChecked())
        self._show_command()
        self.refresh_live()

    def start(self, resume: bool = False) -> None:
        self._settings()
        if resume and not self.project.path("style", "checkpoint.json").exists():
            self.fail("There is no style checkpoint to resume yet: press Train.")
            return
        if not resume and self.project.path("style", "checkpoint.json").exists():
            kept = _set_aside(self.project.path("style"))  # a fresh run; hours of work kept
            self.status.setText(f"the previous style run was moved to {kept.name}")
        self.project.update("style", bundle="")
        self.project.mark_done("style", False)
        fn, command = runner.style_job(self.project, resume=resume)
        self.command.setPlainText(command)
        self.run_job(fn, "style training", self._trained)

    def _trained(self, bundle) -> None:
        self.project.update("style", bundle=str(bundle))
        self.status.setText(f"style bundle written: {Path(bundle).name}")
        self.refresh_live()

    def on_progress(self, event) -> None:
        self.refresh_live()

    def refresh_live(self) -> None:
        path = runner.latest_preview(self.project)
        if path is not None:
            pix = QPixmap(str(path))
            if not pix.isNull():
                self.preview.setPixmap(pix.scaled(320, 200, Qt.AspectRatioMode.KeepAspectRatio))
        history = runner.style_history(self.project)
        self.losses.clear()
        if history:
            its = [h.get("iteration", i) for i, h in enumerate(history)]
            keys = [k for k in history[-1] if k not in ("iteration", "seconds")][:5]
            for i, key in enumerate(keys):
                self.losses.plot(its, [h.get(key, np.nan) for h in history], name=key,
                                 pen=pg.intColor(i, len(keys)))

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and (self.skip.isChecked()
                                          or bool(self.project["style"]["bundle"]))

    def check_and_save(self):
        if not self.skip.isChecked() and not self.project["style"]["bundle"]:
            return self.fail("Train the style model (or resume it), or tick ‘Skip style "
                             "training’.")
        self.project.update("style", skip=self.skip.isChecked())
        return True

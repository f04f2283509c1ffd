"""The Dataset page: labelled simulations in the microscope's style."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
)

from stackview.errors import one_sentence
from stackview.gui.wizard import runner
from stackview.gui.wizard.pages.base import StepPage, _duration, _spin
from stackview.gui.wizard.project import Project


class DatasetPage(StepPage):
    step = "dataset"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Training data",
                         "Labelled simulations in your microscope's style, with robustness "
                         "augmentations.")
        form = QFormLayout()
        self.mode = QComboBox()
        self.mode.addItems(["random", "grid"])
        self.count = _spin(1, 5_000_000, 2000)
        self.step_A = _spin(0.005, 5, 0.1, 3, 0.01, " Å")
        self.patch_px = _spin(16, 2048, 128)
        self.test_count = _spin(1, 100_000, 200)
        self.vacancies = _spin(0, 0.49, 0.0, 2, 0.01)
        self.holes = _spin(0, 1, 0.0, 2, 0.05)
        self.contamination = _spin(0, 1, 0.0, 2, 0.05)
        self.psnr = QCheckBox("Gaussian noise, PSNR 7–30 dB (the paper's)")
        form.addRow("Labels", self.mode)
        form.addRow("Patches (random) / per grid point", self.count)
        form.addRow("Grid step (slip)", self.step_A)
        form.addRow("Patch = window size (px)", self.patch_px)
        form.addRow("Held-out test patches", self.test_count)
        form.addRow("Vacancies up to (fraction)", self.vacancies)
        form.addRow("Hole probability", self.holes)
        form.addRow("Contamination probability", self.contamination)
        form.addRow(self.psnr)
        self.layout_.addLayout(form)
        self.estimate = QLabel()
        self.estimate.setWordWrap(True)
        self.layout_.addWidget(self.estimate)
        self.add_runner("Generate")
        self.layout_.addWidget(self.error)
        self.layout_.addStretch(1)
        for box in (self.count, self.step_A, self.patch_px, self.test_count, self.vacancies,
                    self.holes, self.contamination):
            box.valueChanged.connect(lambda *_: self.update_estimate())
        self.mode.currentTextChanged.connect(lambda *_: self.update_estimate())
        self.psnr.toggled.connect(lambda *_: self.update_estimate())

    def _save(self) -> None:
        self.project.update(
            "dataset", mode=self.mode.currentText(), count=self.count.value(),
            step_A=self.step_A.value(), patch_px=self.patch_px.value(),
            test_count=self.test_count.value(), vacancies=self.vacancies.value(),
            holes=self.holes.value(), contamination=self.contamination.value(),
            psnr=[7.0, 30.0] if self.psnr.isChecked() else [])

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        d = self.project["dataset"]
        for box, key in ((self.count, "count"), (self.step_A, "step_A"),
                         (self.patch_px, "patch_px"), (self.test_count, "test_count"),
                         (self.vacancies, "vacancies"), (self.holes, "holes"),
                         (self.contamination, "contamination")):
            box.blockSignals(True)
            box.setValue(d[key])
            box.blockSignals(False)
        self.mode.setCurrentText(d["mode"])
        self.psnr.setChecked(bool(d["psnr"]))
        self.update_estimate()

    def update_estimate(self) -> None:
        try:
            self._save()
            n, seconds, nbytes = runner.dataset_estimate(self.project)
            _, command = runner.dataset_job(self.project)
        except (ValueError, OSError) as exc:
            self.estimate.setText("")
            self.fail(one_sentence(exc))
            return
        self.clear_error()
        self.estimate.setText(f"{runner.window_text(self.project)} About {n} patches, "
                              f"≈ {nbytes / 1e6:.1f} MB on disk and ≈ {_duration(seconds)} on "
                              "one core (rough estimate).")
        self.command.setPlainText(command)

    def start(self, resume: bool = False) -> None:
        self._save()
        self.project.mark_done("dataset", False)
        fn, _ = runner.dataset_job(self.project)
        self.run_job(fn, "generating data", self._made)

    def _made(self, paths) -> None:
        from stackview.datasets.store import open_dataset

        ds = open_dataset(paths[0])
        self.project.update("dataset", train=str(paths[0]), test=str(paths[1]),
                            seconds=float(ds.attrs.get("generation_seconds", 0)))
        self.status.setText(f"{len(ds)} training patches written")
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        d = self.project["dataset"]
        return super().isComplete() and bool(d["train"]) and Path(d["train"]).exists()

    def check_and_save(self):
        if not self.isComplete():
            return self.fail("Generate the training data first (press Generate).")
        return True

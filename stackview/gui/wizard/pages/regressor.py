"""The Regressor page: training the network, with its loss curve."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
)

from stackview.gui.wizard import runner
from stackview.gui.wizard.pages.base import StepPage, _set_aside, _spin
from stackview.gui.wizard.project import Project


class RegressorPage(StepPage):
    step = "regressor"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Regressor training",
                         "The network that reads slip or twist from a patch.")
        import torch

        form = QFormLayout()
        self.name = QLineEdit()
        self.backbone = QComboBox()
        self.backbone.addItems(["resnet18", "resnet50", "tiny"])
        self.steps = _spin(1, 10_000_000, 3000)
        self.batch = _spin(1, 4096, 32)
        self.lr = _spin(1e-6, 1, 1e-3, 6, 1e-4)
        self.start_from = QComboBox()
        self.start_from.setToolTip(
            "Start from a trained model of the same kind (e.g. the ReS2 slip model for ReSe2): "
            "it learns a related material in a fraction of the steps; use a lower learning "
            "rate (e.g. 3e-4).")
        self.backbone.currentTextChanged.connect(self._fill_start_models)
        form.addRow("Model name", self.name)
        form.addRow("Backbone", self.backbone)
        form.addRow("Start from", self.start_from)
        form.addRow("Steps", self.steps)
        form.addRow("Batch size", self.batch)
        form.addRow("Learning rate", self.lr)
        self.layout_.addLayout(form)
        device = (f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
                  else "CPU (no GPU found)")
        self.layout_.addWidget(QLabel(f"Trains on: {device}"))
        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setLabel("bottom", "step")
        self.curve_plot.setLabel("left", "loss")
        self.curve = self.curve_plot.plot(pen="y")
        self.layout_.addWidget(self.curve_plot, 1)
        self.add_runner("Train", resumable=True)
        self.layout_.addWidget(self.error)
        self.points: list[tuple[int, float]] = []

    def _save(self) -> bool:
        from stackview.models.registry import user_models_dir

        name = self.name.text().strip()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            return self.fail("Give the model a name of letters, digits, - and _.")
        installed = user_models_dir() / name
        if (Path(str(installed) + ".json").exists()
                and self.project["finish"]["installed"] != str(installed)):
            return self.fail(f"Your library already has a model called {name}; choose "
                             "another name.")
        self.project.update("finish", name=name)
        self.project.update("regressor", backbone=self.backbone.currentText(),
                            steps=self.steps.value(), batch_size=self.batch.value(),
                            lr=self.lr.value(), init_from=self.start_from.currentData() or "")
        return True

    def _fill_start_models(self, backbone: str) -> None:
        keep = self.start_from.currentData() or self.project["regressor"].get("init_from", "")
        self.start_from.clear()
        self.start_from.addItem("nothing (train from scratch)", "")
        for name in runner.start_models(self.project, backbone):
            self.start_from.addItem(name, name)
        index = self.start_from.findData(keep)
        self.start_from.setCurrentIndex(max(0, index))

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        r = self.project["regressor"]
        self.name.setText(self.project["finish"]["name"] or runner.default_model_name(
            self.project))
        self.backbone.setCurrentText(r["backbone"])
        self._fill_start_models(r["backbone"])
        self.steps.setValue(int(r["steps"]))
        self.batch.setValue(int(r["batch_size"]))
        self.lr.setValue(float(r["lr"]))
        self.points = [(h["step"], h["loss"]) for h in r["history"] if "loss" in h]
        self._draw()
        self.command.setPlainText(runner.regressor_job(self.project)[1])

    def start(self, resume: bool = False) -> None:
        if not self._save():
            return
        ckpt = self.project.path("model", "checkpoints")
        if resume and not any(ckpt.glob("*")):
            self.fail("There is no checkpoint to resume yet: press Train.")
            return
        if not resume and ckpt.exists():
            _set_aside(ckpt)
        self.project.update("regressor", bundle="")
        self.project.mark_done("regressor", False)
        if not resume:
            self.points = []
        fn, command = runner.regressor_job(self.project, resume=resume)
        self.command.setPlainText(command)
        self.run_job(fn, "training the regressor", self._trained)

    def on_progress(self, event) -> None:
        loss = event.metrics.get("loss")  # a Progress event's number, never its text
        if loss is not None:
            self.points.append((event.done, float(loss)))
            self._draw()

    def _draw(self) -> None:
        if self.points:
            x, y = zip(*self.points, strict=True)
            self.curve.setData(list(x), list(y))
        else:
            self.curve.setData([], [])

    def _trained(self, result) -> None:
        history = [{k: v for k, v in h.items() if isinstance(v, (int, float))}
                   for h in result["history"]]
        self.project.update("regressor", bundle=result["bundle"], history=history,
                            device=result["device"])
        if history and "loss" in history[0]:
            self.points = [(h["step"], h["loss"]) for h in history if "step" in h]
            self._draw()
        self.status.setText(f"model written: {Path(result['bundle']).name} "
                            f"({result['device']})")

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and bool(self.project["regressor"]["bundle"])

    def check_and_save(self):
        if not self.project["regressor"]["bundle"]:
            return self.fail("Train the regressor first (press Train).")
        return True

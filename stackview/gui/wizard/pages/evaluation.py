"""The Evaluation page: accuracy on held-out simulations."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QHBoxLayout,
    QTableWidget,
    QTableWidgetItem,
)

from stackview.gui.wizard import runner
from stackview.gui.wizard.pages.base import StepPage
from stackview.gui.wizard.project import Project


class EvaluationPage(StepPage):
    step = "evaluation"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Evaluation",
                         "Accuracy on held-out simulations the model never saw.")
        self.hist = pg.PlotWidget()
        self.hist.setLabel("bottom", "error")
        self.hist.setLabel("left", "patches")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Quantity", "Value"])
        self.table.horizontalHeader().setStretchLastSection(True)
        row = QHBoxLayout()
        row.addWidget(self.hist, 1)
        row.addWidget(self.table, 1)
        self.layout_.addLayout(row, 1)
        self.add_runner("Evaluate")
        self.layout_.addWidget(self.error)
        self.errors: list[float] = []

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        self.command.setPlainText(runner.evaluation_job(self.project)[1])
        ev = self.project["evaluation"]
        self.errors = list(ev.get("errors", []))
        self.show_metrics(ev["metrics"])

    def start(self, resume: bool = False) -> None:
        self.project.mark_done("evaluation", False)
        fn, command = runner.evaluation_job(self.project)
        self.command.setPlainText(command)
        self.run_job(fn, "evaluating", self._evaluated)

    def _evaluated(self, result) -> None:
        metrics = {k: v for k, v in result["metrics"].items() if k != "dataset"}
        self.errors = result["errors"]
        self.project.update("evaluation", metrics=metrics, report=result["report"],
                            errors=self.errors)
        self.show_metrics(metrics)

    def show_metrics(self, metrics: dict) -> None:
        rows = runner.accuracy_rows(metrics) if metrics else []
        self.table.setRowCount(len(rows))
        for r, (k, v) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(k))
            self.table.setItem(r, 1, QTableWidgetItem(v))
        self.hist.clear()
        if self.errors:
            unit = "Å" if "mean_A" in metrics else "°"
            counts, edges = np.histogram(self.errors, bins=min(30, max(5, len(self.errors) // 4)))
            self.hist.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                              brush=pg.mkBrush(60, 130, 200)))
            self.hist.setLabel("bottom", "ΔD" if unit == "Å" else "Δθ", units=unit)

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and bool(self.project["evaluation"]["metrics"])

    def check_and_save(self):
        if not self.project["evaluation"]["metrics"]:
            return self.fail("Evaluate the model first (press Evaluate).")
        return True

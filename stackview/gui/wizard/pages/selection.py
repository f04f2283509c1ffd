"""The Selection page (Trident I): candidate simulations mapped with the images by t-SNE."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QFormLayout,
    QLabel,
)

from stackview.gui.wizard import runner
from stackview.gui.wizard.pages.base import StepPage, _spin
from stackview.gui.wizard.project import Project


class SelectionPage(StepPage):
    step = "selection"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Selection of simulations (Trident I)",
                         "Noise-free simulations are mapped with your images by t-SNE; those "
                         "in your images' cluster are chosen (red). Click a point to add or "
                         "remove it.")
        form = QFormLayout()
        self.candidates = _spin(4, 5000, 24)
        self.candidate_px = _spin(32, 1024, 128)
        self.keep = _spin(0, 5000, 0)
        self.keep.setSpecialValueText("the whole cluster")
        form.addRow("Candidate simulations", self.candidates)
        form.addRow("Candidate size (px)", self.candidate_px)
        form.addRow("Keep at most", self.keep)
        self.layout_.addLayout(form)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(220)
        self.plot.setLabel("bottom", "t-SNE 1")
        self.plot.setLabel("left", "t-SNE 2")
        self.sims = pg.ScatterPlotItem(size=9, pen=None)
        self.exps = pg.ScatterPlotItem(size=13, symbol="s", brush=pg.mkBrush(40, 110, 220))
        self.plot.addItem(self.sims)
        self.plot.addItem(self.exps)
        self.sims.sigClicked.connect(self._clicked)
        self.layout_.addWidget(self.plot, 1)
        self.features = QLabel()
        self.features.setWordWrap(True)
        self.layout_.addWidget(self.features)
        self.add_runner("Simulate and select")
        self.layout_.addWidget(self.error)
        self.data: dict | None = None

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        sel = self.project["selection"]
        self.candidates.setValue(int(sel["candidates"]))
        self.candidate_px.setValue(int(sel["candidate_px"]))
        self.keep.setValue(int(sel["keep"]))
        self._show_command()
        self.data = runner.load_selection_plot(self.project)
        self.redraw()

    def _save_settings(self) -> None:
        self.project.update("selection", candidates=self.candidates.value(),
                            candidate_px=self.candidate_px.value(), keep=self.keep.value())

    def _show_command(self) -> None:
        _, c1 = runner.candidates_job(self.project)
        _, c2 = runner.selection_job(self.project)
        self.command.setPlainText(c1 + "\n(export the patches as images, then)\n" + c2)

    def start(self, resume: bool = False) -> None:
        self._save_settings()
        self.project.mark_done("selection", False)
        self.project.update("selection", chosen=[])
        self._show_command()
        fn, _ = runner.candidates_job(self.project)
        self.run_job(fn, "simulating candidates", lambda _: self._select())

    def _select(self) -> None:
        fn, command = runner.selection_job(self.project)
        self.run_job(fn, "selecting", self._selected)

    def _selected(self, result) -> None:
        self.project.update("selection", chosen=list(result.chosen_names),
                            feature_kind=result.feature_kind)
        self.data = runner.load_selection_plot(self.project)
        self.status.setText(f"{len(result.chosen)} of {len(result.simulation_names)} "
                            "simulations chosen")
        self.redraw()

    def redraw(self) -> None:
        self.sims.clear()
        self.exps.clear()
        if not self.data:
            self.features.setText("Press ‘Simulate and select’.")
            return
        emb = np.asarray(self.data["embedding"], dtype=float)
        names = self.data["simulations"]
        ns = len(names)
        chosen = set(self.project["selection"]["chosen"])
        brushes = [pg.mkBrush(220, 50, 40) if n in chosen else pg.mkBrush(150, 150, 150)
                   for n in names]
        self.sims.setData(pos=emb[:ns], brush=brushes, data=list(range(ns)))
        self.exps.setData(pos=emb[ns:])
        self.features.setText(f"Features: {self.data.get('feature_kind', '?')} — "
                              f"{self.data.get('feature_note', '')}. "
                              f"{len(chosen)} chosen (red), experimental images blue.")

    def toggle(self, index: int) -> None:
        """Add or remove simulation ``index`` from the chosen set (and save)."""
        name = self.data["simulations"][index]
        chosen = list(self.project["selection"]["chosen"])
        if name in chosen:
            chosen.remove(name)
        else:
            chosen.append(name)
        runner.save_chosen(self.project, chosen)
        self.project.mark_done("selection", False)
        self.redraw()
        self.completeChanged.emit()

    def _clicked(self, item, points, *_) -> None:
        if points is not None and len(points):
            self.toggle(int(points[0].data()))

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and bool(self.project["selection"]["chosen"])

    def check_and_save(self):
        if not self.project["selection"]["chosen"]:
            return self.fail("Run the selection, or click at least one simulation to use it.")
        return True

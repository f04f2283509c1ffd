"""The window inspector: a picked window, its atomic model, the re-simulation, line profiles
(the paper's Fig. 4g check)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


def ncc_words(ncc: float | None, threshold: float) -> str:
    """'re-simulation NCC 0.42 in the analysis (poor: below 0.3)' for a window."""
    if ncc is None or not np.isfinite(ncc):
        return "no re-simulation NCC in the analysis"
    text = f"re-simulation NCC {ncc:.2f} in the analysis"
    if ncc < threshold:
        text += f" (poor: below {threshold:g}, the labels do not reproduce this window)"
    return text


class WindowInspector(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.inspection = None
        self.glw = pg.GraphicsLayoutWidget()
        self.exp_plot = self.glw.addPlot(row=0, col=0, title="window (model's view)")
        self.sim_plot = self.glw.addPlot(row=0, col=1, title="re-simulated")
        for p in (self.exp_plot, self.sim_plot):
            p.setAspectLocked(True)
            p.invertY(True)
            p.hideAxis("left")
            p.hideAxis("bottom")
        self.exp_image = pg.ImageItem()
        self.sim_image = pg.ImageItem()
        self.exp_plot.addItem(self.exp_image)
        self.sim_plot.addItem(self.sim_image)
        self.atoms = pg.ScatterPlotItem(size=5, pen=pg.mkPen("r"), brush=pg.mkBrush(None))
        self.exp_plot.addItem(self.atoms)
        # one row (window | re-simulation | profile): the dock is wide and short, and a second
        # row squeezed the two windows to a few dozen pixels
        self.profile_plot = self.glw.addPlot(row=0, col=2, title="line profile (middle row)")
        self.glw.ci.layout.setColumnStretchFactor(2, 2)
        self.profile_plot.addLegend(offset=(-10, 5))  # top right, clear of the first peaks
        self.profile_plot.setLabel("bottom", "distance", units="nm")
        self.profile_plot.getAxis("bottom").enableAutoSIPrefix(False)  # never "mnm"
        self.exp_curve = self.profile_plot.plot(pen=pg.mkPen("w", width=2), name="experiment")
        self.sim_curve = self.profile_plot.plot(pen=pg.mkPen("y", width=2), name="simulation")
        self.info = QLabel("Click a point of the map to inspect its window.")
        self.info.setWordWrap(True)
        self.export_button = QPushButton("Export atomic model…")
        self.export_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.info, 1)
        row.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.glw)

    def show_window_ncc(self, x_nm: float, y_nm: float, ncc: float | None,
                        threshold: float, stacking: str = "") -> None:
        """At the click, before the re-simulation job returns: the window, its stacking (a
        family model's: family, class, distance) and the NCC the analysis scored it with."""
        self.export_button.setEnabled(False)
        self.info.setText(f"Window at ({x_nm:.2f}, {y_nm:.2f}) nm: "
                          + (f"{stacking}; " if stacking else "")
                          + f"{ncc_words(ncc, threshold)}; re-simulating it…")

    def show_inspection(self, ins) -> None:
        self.inspection = ins
        c = ins.check
        self.exp_image.setImage(np.asarray(c.window, dtype=np.float32))
        self.sim_image.setImage(np.asarray(c.simulated, dtype=np.float32))
        self.atoms.setData(ins.atoms_px[:, 0], ins.atoms_px[:, 1])
        d_nm = np.arange(len(c.profile_experiment)) * ins.sampling_A / 10.0
        self.exp_curve.setData(d_nm, c.profile_experiment)
        self.sim_curve.setData(d_nm, c.profile_simulation)
        labels = ", ".join(f"{n} {v:.3f}" for n, v in zip(ins.names, ins.values, strict=True))
        if getattr(ins, "bound", ""):
            labels = (f"θ {ins.bound[0]} {ins.bound[1:]}° (a bound: its moiré is longer than "
                      f"the window holds; shown re-simulated at the {ins.values[0]:.2f}° the "
                      "network guessed)")
        if getattr(ins, "stacking", ""):
            labels += f"; {ins.stacking}"
        text = (f"Window at ({ins.x_nm:.2f}, {ins.y_nm:.2f}) nm: {labels}; "
                f"NCC with the re-simulation {c.ncc:.3f}")
        if ins.analysis_ncc is not None:
            text += f"; {ncc_words(ins.analysis_ncc, ins.ncc_threshold)}"
        self.info.setText(text)
        self.export_button.setEnabled(True)

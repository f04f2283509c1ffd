"""The PEL panel: each window's slip (Da, Db) as a point on the monolayer cell.

The slips are drawn in Cartesian coordinates of the slip plane (Å, a along +x), inside the
cell spanned by a and b, with the canonical label domain shaded. The energy landscape itself
comes from :mod:`stackview.pel` (the user's cached landscape of the material, else the
shipped one); where there is none yet the panel says so in its title, and
:meth:`PelPlot.set_landscape` draws a grid under the points when there is one. For a family
model's map the window passes the family's canonical triangle as the domain and its stacking
classes as marks (:meth:`PelPlot.set_marks`).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF
from PySide6.QtGui import QPolygonF, QTransform
from PySide6.QtWidgets import QGraphicsPolygonItem, QLabel, QVBoxLayout, QWidget

NO_LANDSCAPE = "Slips on the unit cell — no energy landscape yet"


class PelPlot(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.widget = pg.PlotWidget(title=NO_LANDSCAPE)
        self.widget.setAspectLocked(True)
        self.widget.setLabel("bottom", "D along x (a)", units="Å")
        self.widget.setLabel("left", "D along y", units="Å")
        for side in ("bottom", "left"):  # never "mÅ" / "kÅ"
            self.widget.getAxis(side).enableAutoSIPrefix(False)
        self.landscape = pg.ImageItem()
        self.landscape.setZValue(-10)
        self.widget.addItem(self.landscape)
        self.cell = self.widget.plot(pen=pg.mkPen("w", width=1.5))
        self.domain = QGraphicsPolygonItem()
        self.domain.setBrush(pg.mkBrush(80, 160, 255, 50))
        self.domain.setPen(pg.mkPen(None))
        self.widget.addItem(self.domain)
        self.points = pg.ScatterPlotItem(size=6, pen=pg.mkPen(None),
                                         brush=pg.mkBrush(255, 200, 0, 160))
        self.widget.addItem(self.points)
        # a family model's map: its family's classes named at their slips
        self.marks = pg.ScatterPlotItem(size=7, symbol="x", pen=pg.mkPen("w", width=1.5))
        self.widget.addItem(self.marks)
        self.mark_labels: list[pg.TextItem] = []
        self.has_landscape = False
        self.a_vec = np.array([1.0, 0.0])
        self.b_vec = np.array([0.0, 1.0])
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.widget)
        layout.addWidget(self.notes)

    def set_cell(self, a_vec_A, b_vec_A, domain_frac=None) -> None:
        """Draw the cell (a, b in Å, Cartesian) and the canonical domain Da ∈ [0, |a|),
        Db ∈ [0, |b|/2], or the polygon ``domain_frac`` (vertices in fractions of a, b: a
        stacking family's canonical triangle)."""
        self.a_vec = np.asarray(a_vec_A, dtype=float)[:2]
        self.b_vec = np.asarray(b_vec_A, dtype=float)[:2]
        a, b = self.a_vec, self.b_vec
        corners = np.array([[0, 0], a, a + b, b, [0, 0]])
        self.cell.setData(corners[:, 0], corners[:, 1])
        if domain_frac is not None:
            f = np.asarray(domain_frac, dtype=float).reshape(-1, 2)
            dom = np.outer(f[:, 0], a) + np.outer(f[:, 1], b)
        else:
            dom = np.array([[0, 0], a, a + b / 2, b / 2])
        self.domain.setPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in dom]))

    def set_marks(self, marks) -> None:
        """Name points of the cell: ``(label, x_A, y_A)`` each (e.g. the stacking classes of
        a family); an empty list removes them."""
        for item in self.mark_labels:
            self.widget.removeItem(item)
        self.mark_labels = []
        marks = list(marks)
        self.marks.setData([m[1] for m in marks], [m[2] for m in marks])
        for label, x, y in marks:
            item = pg.TextItem(label, color="w", anchor=(0.5, 1.2))
            item.setPos(float(x), float(y))
            self.widget.addItem(item)
            self.mark_labels.append(item)

    def slips_to_xy(self, da_A, db_A) -> np.ndarray:
        """(Da, Db) along the unit vectors â, b̂ (Å) -> Cartesian (x, y) in Å."""
        ua = self.a_vec / np.linalg.norm(self.a_vec)
        ub = self.b_vec / np.linalg.norm(self.b_vec)
        return np.outer(np.asarray(da_A, float), ua) + np.outer(np.asarray(db_A, float), ub)

    def set_slips(self, da_A, db_A) -> None:
        xy = self.slips_to_xy(da_A, db_A)
        ok = np.all(np.isfinite(xy), axis=1)
        self.points.setData(xy[ok, 0], xy[ok, 1])
        self.widget.autoRange()

    def set_landscape(self, energy: np.ndarray | None, label: str = "E (meV/cell)",
                      notes=()) -> None:
        """Draw an energy grid over the cell under the points, or remove it with ``None``.

        ``energy[j, i]`` (rows along b, columns along a) is the energy at the slip
        ``(i/n_a)·a + (j/n_b)·b``; each value is drawn centred on its grid point. ``notes``:
        the library's caveats about the landscape, shown under the plot."""
        self.notes.setText("\n".join(f"Note: {n}" for n in notes))
        if energy is None:
            self.landscape.clear()
            self.has_landscape = False
            self.widget.setTitle(NO_LANDSCAPE)  # one line again (30 px)
            return
        energy = np.asarray(energy, dtype=float)
        n_b, n_a = energy.shape
        a, b = self.a_vec, self.b_vec
        # pixel (col, row) -> (col - ½)/n_a · a + (row - ½)/n_b · b: an affine map onto the
        # cell that centres pixel (i, j) on its grid point
        off = -(a / n_a + b / n_b) / 2
        self.landscape.setImage(energy)
        self.landscape.setTransform(QTransform(a[0] / n_a, a[1] / n_a, b[0] / n_b, b[1] / n_b,
                                               off[0], off[1]))
        self.landscape.setLookupTable(pg.colormap.get("CET-L4").getLookupTable())
        self.has_landscape = True
        # two lines: on one, the label was cut off at the panel's usual width
        item = self.widget.getPlotItem()
        item.setTitle(f"Slips on the energy landscape<br>({label}, 0 = minimum)")
        item.titleLabel.setMaximumHeight(48)
        item.layout.setRowFixedHeight(0, 48)

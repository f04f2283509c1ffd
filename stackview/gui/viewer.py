"""The image viewer: calibrated image, contrast/colormap, scale bar, tools and map overlays.

Everything in the plot is in nanometres (the image item is stretched to its calibrated size),
so ROIs, the window square, map overlays and arrows share one coordinate system with the
library (nm from the image's top-left pixel corner, x right, y down).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stackview.gui.stacking_view import class_label

pg.setConfigOptions(imageAxisOrder="row-major")

IMAGE_COLORMAPS = ("grey", "viridis", "inferno", "magma", "cividis", "turbo")
MAP_COLORMAP = "viridis"
ARROW_BINS = 6
#: the map's colour bar (px): narrow, so the image keeps the centre
COLORBAR_WIDTH = 12
COLORBAR_AXIS_WIDTH = 58


def nice_length(width: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k) of about a fifth of ``width``."""
    if not (width > 0):
        return 1.0
    target = width / 5
    k = np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * 10**k <= target:
            return float(m * 10**k)
    return float(10**k)


def _colormap(name: str):
    if name == "grey":
        return pg.ColorMap(pos=[0.0, 1.0], color=[(0, 0, 0), (255, 255, 255)])
    return pg.colormap.get(name)


class ImageViewer(QWidget):
    """Image plot with histogram, colour bar and tools.

    Signals
    -------
    cursorMoved(x_nm, y_nm, text)
        The read-out under the mouse.
    clicked(x_nm, y_nm)
        A left click on the image (used to pick an analysis window).
    profileChanged()
        The line-profile segment moved.
    """

    cursorMoved = Signal(float, float, str)
    clicked = Signal(float, float)
    profileChanged = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.data: np.ndarray | None = None
        self.pixel_size_nm = 1.0
        self.map_values: np.ndarray | None = None
        self.map_rect: QRectF | None = None
        self.map_label = ""
        self.ncc_values: np.ndarray | None = None  # the windows' re-simulation NCC (grid)
        self.ncc_rect: QRectF | None = None
        self.class_grid: np.ndarray | None = None  # a categorical map's class names (grid)
        self.window_words: np.ndarray | None = None  # per grid cell, words for the read-out
        self.window_words_rect: QRectF | None = None

        self.glw = pg.GraphicsLayoutWidget()
        self.plot = self.glw.addPlot(row=0, col=0)
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.setLabel("bottom", "x", units="nm")
        self.plot.setLabel("left", "y", units="nm")
        for side in ("bottom", "left"):  # the axes are in nm: no "mnm" when zoomed in
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.image_item = pg.ImageItem()
        self.plot.addItem(self.image_item)
        self.histogram = pg.HistogramLUTItem(image=self.image_item)
        self.glw.addItem(self.histogram, row=0, col=1)
        # folded away until asked for (the "Contrast" button): beside the colour bar it took
        # more of the centre than the image
        self.histogram.hide()

        self.map_item = pg.ImageItem()
        self.map_item.setZValue(10)
        self.map_item.setOpacity(0.6)
        self.plot.addItem(self.map_item)
        self.colorbar = pg.ColorBarItem(colorMap=_colormap(MAP_COLORMAP), interactive=True,
                                        label="", width=COLORBAR_WIDTH)
        self.colorbar.setImageItem(self.map_item)
        self.colorbar.axis.enableAutoSIPrefix(False)  # Å values, not "(x0.001)"-scaled ticks
        self.colorbar.axis.setWidth(COLORBAR_AXIS_WIDTH)  # room for "0.802" and the label
        self.glw.addItem(self.colorbar, row=0, col=2)
        self.map_item.hide()
        self.colorbar.hide()
        # a categorical map (stacking classes): flat colours, a legend instead of the colour bar
        self.class_item = pg.ImageItem()
        self.class_item.setZValue(10)
        self.class_item.setOpacity(0.6)
        self.plot.addItem(self.class_item)
        self.class_item.hide()
        # windows that do not match their re-simulation, greyed over the map
        self.poor_item = pg.ImageItem()
        self.poor_item.setZValue(11)
        self.plot.addItem(self.poor_item)
        self.poor_item.hide()

        self.arrow_items = [pg.PlotDataItem(connect="pairs") for _ in range(ARROW_BINS)]
        for item in self.arrow_items:
            item.setZValue(20)
            self.plot.addItem(item)

        # the view is in nm, so the bar's size is in nm too (its label is set in nm)
        self.scale_bar = pg.ScaleBar(size=1.0, suffix="m")
        self.scale_bar.setParentItem(self.plot.getViewBox())
        self.scale_bar.anchor((1, 1), (1, 1), offset=(-20, -20))
        self.scale_bar.hide()  # until an image gives it a length

        # the analysis window drawn to scale: a square the user drags (not resizable: its
        # size is the model's window)
        self.window_square = pg.ROI([0, 0], [1, 1], pen=pg.mkPen("y", width=2), movable=True,
                                    resizable=False, rotatable=False)
        self.window_square.setZValue(30)
        self.plot.addItem(self.window_square)
        self.window_square.hide()  # shown with the first image
        self.roi = pg.RectROI([0, 0], [1, 1], pen=pg.mkPen("c", width=2))
        self.roi.setZValue(30)
        self.plot.addItem(self.roi)
        self.roi.hide()
        self.line = pg.LineSegmentROI([[0, 0], [1, 1]], pen=pg.mkPen("m", width=2))
        self.line.setZValue(30)
        self.plot.addItem(self.line)
        self.line.hide()
        self.line.sigRegionChanged.connect(lambda *_: self.profileChanged.emit())
        self.picked = pg.ROI([0, 0], [1, 1], pen=pg.mkPen("r", width=2), movable=False,
                             resizable=False, rotatable=False)
        self.picked.setZValue(31)
        self.plot.addItem(self.picked)
        self.picked.hide()

        self.cmap_box = QComboBox()
        self.cmap_box.addItems(IMAGE_COLORMAPS)
        self.cmap_box.currentTextChanged.connect(self.set_colormap)
        self.readout = QLabel("")
        self.contrast_button = QToolButton()
        self.contrast_button.setText("Contrast")
        self.contrast_button.setCheckable(True)
        self.contrast_button.setToolTip("Show the histogram with the contrast levels")
        self.contrast_button.toggled.connect(self.histogram.setVisible)
        # an unreliable result's banner over the image: impossible to miss while looking at it
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("QLabel { background: #c62828; color: white; "
                                   "font-weight: bold; padding: 6px; }")
        self.warning.hide()
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.hide()
        top = QHBoxLayout()
        top.addWidget(QLabel("Colormap"))
        top.addWidget(self.cmap_box)
        top.addWidget(self.contrast_button)
        top.addStretch(1)
        top.addWidget(self.readout)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.warning)
        layout.addWidget(self.glw, 1)
        layout.addWidget(self.legend)

        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._mouse_clicked)

    # --- image -------------------------------------------------------------------------------
    def set_image(self, data: np.ndarray, pixel_size_nm: float) -> None:
        """Show ``data`` at ``pixel_size_nm`` (keeps contrast tools, clears the overlays)."""
        self.data = np.asarray(data, dtype=np.float32)
        self.image_item.setImage(self.data, autoLevels=True)
        self.clear_map()
        self.set_pixel_size(pixel_size_nm)
        # the window square starts at the centre of each newly shown image
        w, h = self.extent_nm()
        size = self.window_square.size()
        self.window_square.setPos((w / 2 - size.x() / 2, h / 2 - size.y() / 2))
        self.window_square.show()
        self.fit_image()

    def set_pixel_size(self, pixel_size_nm: float) -> None:
        if self.data is None:
            return
        self.pixel_size_nm = float(pixel_size_nm)
        ny, nx = self.data.shape
        w, h = nx * self.pixel_size_nm, ny * self.pixel_size_nm
        self.image_item.setRect(QRectF(0, 0, w, h))
        self.scale_bar.size = nice_length(w)  # in view units (nm), or the bar has no width
        self.scale_bar.text.setText(f"{self.scale_bar.size:g} nm")
        self.scale_bar.updateBar()
        self.scale_bar.show()
        # programmatic moves do not finish a region change: only the user's drags are edits
        self.roi.setPos((w * 0.25, h * 0.25), finish=False)
        self.roi.setSize((w * 0.5, h * 0.5), finish=False)
        self.line.setPos((0, 0))
        handles = self.line.getHandles()
        handles[0].setPos(QPointF(w * 0.2, h * 0.5))
        handles[1].setPos(QPointF(w * 0.8, h * 0.5))
        self.fit_image()

    def fit_image(self) -> None:
        """Fit the view to the whole image (the view box keeps this target range in view while
        the panels around the viewer settle, until the user zooms or pans)."""
        if self.data is None:
            return
        w, h = self.extent_nm()
        self.plot.getViewBox().setRange(QRectF(0, 0, w, h), padding=0.02)

    def set_colormap(self, name: str) -> None:
        self.histogram.gradient.setColorMap(_colormap(name))

    def extent_nm(self) -> tuple[float, float]:
        if self.data is None:
            return 0.0, 0.0
        ny, nx = self.data.shape
        return nx * self.pixel_size_nm, ny * self.pixel_size_nm

    def set_window_nm(self, window_nm: float) -> None:
        """Resize the window square, keeping its centre."""
        pos, size = self.window_square.pos(), self.window_square.size()
        centre = (pos.x() + size.x() / 2, pos.y() + size.y() / 2)
        if self.data is not None and size.x() <= 1.0 and pos.x() == 0:
            w, h = self.extent_nm()
            centre = (w / 2, h / 2)
        self.window_square.setSize((window_nm, window_nm))
        self.window_square.setPos((centre[0] - window_nm / 2, centre[1] - window_nm / 2))

    def roi_nm(self) -> tuple[float, float, float, float]:
        """The rectangular ROI as (x0, y0, x1, y1) in nm."""
        pos, size = self.roi.pos(), self.roi.size()
        x0, y0 = pos.x(), pos.y()
        return (x0, y0, x0 + size.x(), y0 + size.y())

    def set_roi_nm(self, roi) -> None:
        x0, y0, x1, y1 = roi
        self.roi.setPos((x0, y0), finish=False)
        self.roi.setSize((x1 - x0, y1 - y0), finish=False)

    def roi_pixels(self) -> np.ndarray | None:
        """The image under the ROI (for the FFT of a region)."""
        if self.data is None:
            return None
        x0, y0, x1, y1 = (v / self.pixel_size_nm for v in self.roi_nm())
        ny, nx = self.data.shape
        c0, c1 = max(0, int(x0)), min(nx, int(np.ceil(x1)))
        r0, r1 = max(0, int(y0)), min(ny, int(np.ceil(y1)))
        return self.data[r0:r1, c0:c1] if c1 - c0 > 1 and r1 - r0 > 1 else None

    def line_profile(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(distance_nm, intensity) along the profile segment."""
        if self.data is None:
            return None
        values = self.line.getArrayRegion(self.data, self.image_item, order=1)
        p0, p1 = (self.line.mapToParent(h.pos()) for h in self.line.getHandles())
        length = float(np.hypot(p1.x() - p0.x(), p1.y() - p0.y()))
        values = np.asarray(values, dtype=float).ravel()
        return np.linspace(0, length, len(values)), values

    # --- maps --------------------------------------------------------------------------------
    def set_map(self, values: np.ndarray, rect: QRectF, label: str,
                levels: tuple[float, float] | None = None) -> None:
        """Overlay a label map covering ``rect`` (nm)."""
        self.map_values = np.asarray(values, dtype=float)  # the library's numbers, unrounded
        self.map_rect = QRectF(rect)
        self.map_label = label
        finite = self.map_values[np.isfinite(self.map_values)]
        if levels is None:
            levels = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if levels[1] <= levels[0]:
                levels = (levels[0] - 0.5, levels[0] + 0.5)
        self.map_item.setImage(self.map_values, autoLevels=False)
        self.map_item.setRect(self.map_rect)
        self.colorbar.setLevels(levels)
        self.colorbar.axis.setLabel(label)
        self.class_grid = None
        self.class_item.hide()
        self.legend.hide()
        self.map_item.show()
        self.colorbar.show()

    def set_classes(self, grid: np.ndarray, rgba: np.ndarray, rect: QRectF, label: str,
                    legend_html: str) -> None:
        """Overlay a categorical map covering ``rect`` (nm): ``grid`` (ny, nx) the class of
        each cell, ``rgba`` (ny, nx, 4) its flat colours; ``legend_html`` (the classes and
        their colours) is shown under the plot instead of the colour bar."""
        self.map_values = None
        self.class_grid = np.asarray(grid)
        self.map_rect = QRectF(rect)
        self.map_label = label
        self.class_item.setImage(np.asarray(rgba, dtype=np.uint8), autoLevels=False,
                                 levels=(0, 255))
        self.class_item.setRect(self.map_rect)
        self.legend.setText(legend_html)
        self.map_item.hide()
        self.colorbar.hide()
        self.class_item.show()
        self.legend.show()

    def set_window_words(self, words: np.ndarray | None, rect: QRectF | None = None) -> None:
        """Words per grid cell covering ``rect`` (nm) that the read-out adds under the cursor
        (e.g. a window's family, stacking class and its distance); None: none."""
        self.window_words = None if words is None else np.asarray(words, dtype=object)
        self.window_words_rect = None if rect is None else QRectF(rect)

    def map_shown(self) -> bool:
        """Whether a map (continuous or categorical) is drawn over the image."""
        return self.map_item.isVisible() or self.class_item.isVisible()

    def clear_map(self) -> None:
        self.map_values = None
        self.class_grid = None
        self.map_rect = None
        self.map_item.hide()
        self.colorbar.hide()
        self.class_item.hide()
        self.legend.hide()
        self.set_window_words(None)
        self.set_ncc(None)
        self.set_warning("")
        self.set_arrows(None)
        self.picked.hide()

    def set_ncc(self, ncc: np.ndarray | None, rect: QRectF | None = None,
                threshold: float = 0.0) -> None:
        """The windows' re-simulation NCC on the map grid covering ``rect`` (nm): shown in the
        read-out, and windows below ``threshold`` greyed over the map."""
        if ncc is None:
            self.ncc_values, self.ncc_rect = None, None
            self.poor_item.hide()
            return
        self.ncc_values = np.asarray(ncc, dtype=float)
        self.ncc_rect = QRectF(rect)
        poor = np.isfinite(self.ncc_values) & (self.ncc_values < threshold)
        rgba = np.zeros((*poor.shape, 4), dtype=np.uint8)
        rgba[poor] = (110, 110, 110, 200)
        self.poor_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.poor_item.setRect(self.ncc_rect)
        self.poor_item.setVisible(bool(poor.any()) and self.map_shown())

    def poor_mask(self) -> np.ndarray | None:
        """Which grid windows are greyed (None without an NCC check)."""
        if self.ncc_values is None:
            return None
        return self.poor_item.image[..., 3] > 0

    def set_warning(self, text: str) -> None:
        """Show ``text`` in the red banner over the image (empty: hide it)."""
        self.warning.setText(text)
        self.warning.setVisible(bool(text))

    def set_map_opacity(self, opacity: float) -> None:
        self.map_item.setOpacity(float(opacity))
        self.class_item.setOpacity(float(opacity))

    def set_map_visible(self, visible: bool) -> None:
        continuous = self.map_values is not None
        classes = self.class_grid is not None
        has = continuous or classes
        self.map_item.setVisible(visible and continuous)
        self.colorbar.setVisible(visible and continuous)
        self.class_item.setVisible(visible and classes)
        self.legend.setVisible(visible and classes)
        poor = self.poor_mask()
        self.poor_item.setVisible(visible and has and poor is not None and bool(poor.any()))

    def set_arrows(self, arrows: tuple | None) -> None:
        """Draw slip arrows: ``(x_nm, y_nm, dx_nm, dy_nm, magnitude)`` flat arrays, coloured
        by magnitude in a few bins (one curve item per bin keeps hundreds of arrows cheap)."""
        for item in self.arrow_items:
            item.setData([], [])
        if arrows is None:
            return
        x, y, dx, dy, mag = (np.asarray(a, dtype=float).ravel() for a in arrows)
        ok = np.isfinite(x + y + dx + dy + mag)
        x, y, dx, dy, mag = x[ok], y[ok], dx[ok], dy[ok], mag[ok]
        if not len(x):
            return
        cmap = _colormap(MAP_COLORMAP)
        edges = np.linspace(mag.min(), mag.max() + 1e-12, ARROW_BINS + 1)
        which = np.clip(np.searchsorted(edges, mag, side="right") - 1, 0, ARROW_BINS - 1)
        for k, item in enumerate(self.arrow_items):
            sel = which == k
            if not sel.any():
                continue
            segs = _arrow_segments(x[sel], y[sel], dx[sel], dy[sel])
            item.setData(segs[:, 0], segs[:, 1],
                         pen=pg.mkPen(cmap.map((k + 0.5) / ARROW_BINS, mode="qcolor"), width=2))

    def show_picked(self, x_nm: float, y_nm: float, window_nm: float) -> None:
        self.picked.setPos((x_nm - window_nm / 2, y_nm - window_nm / 2))
        self.picked.setSize((window_nm, window_nm))
        self.picked.show()

    # --- mouse -------------------------------------------------------------------------------
    def _scene_to_nm(self, pos) -> tuple[float, float] | None:
        if self.data is None or not self.plot.sceneBoundingRect().contains(pos):
            return None
        p = self.plot.getViewBox().mapSceneToView(pos)
        return p.x(), p.y()

    def readout_text(self, x_nm: float, y_nm: float) -> str:
        """'x, y nm · value [· map label value]' at a point (empty outside the image)."""
        if self.data is None:
            return ""
        ny, nx = self.data.shape
        col = int(np.floor(x_nm / self.pixel_size_nm))
        row = int(np.floor(y_nm / self.pixel_size_nm))
        if not (0 <= col < nx and 0 <= row < ny):
            return ""
        text = f"x {x_nm:.3f} nm, y {y_nm:.3f} nm · I {self.data[row, col]:.4g}"
        if self.map_shown():
            value = _cell_value(self.map_values, self.map_rect, x_nm, y_nm)
            if value is not None:
                text += f" · {self.map_label} {value:.3f}"
            words = _cell(self.window_words, self.window_words_rect, x_nm, y_nm)
            if words:
                text += f" · {words}"
            elif self.class_grid is not None:
                name = _cell(self.class_grid, self.map_rect, x_nm, y_nm)
                if name:
                    text += f" · {self.map_label} {class_label(name)}"
            ncc = _cell_value(self.ncc_values, self.ncc_rect, x_nm, y_nm)
            if ncc is not None and "NCC" not in self.map_label:
                text += f" · NCC {ncc:.2f}"
        return text

    def _mouse_moved(self, pos) -> None:
        xy = self._scene_to_nm(pos)
        if xy is None:
            return
        text = self.readout_text(*xy)
        self.readout.setText(text)
        self.cursorMoved.emit(xy[0], xy[1], text)

    def _mouse_clicked(self, event) -> None:
        if event.button() != pg.QtCore.Qt.MouseButton.LeftButton:
            return
        xy = self._scene_to_nm(event.scenePos())
        if xy is not None:
            self.clicked.emit(*xy)


def _arrow_segments(x, y, dx, dy, head: float = 0.3) -> np.ndarray:
    """Line segments (pairs of points) of arrows with two-stroke heads."""
    tip_x, tip_y = x + dx, y + dy
    length = np.hypot(dx, dy) + 1e-12
    ux, uy = dx / length, dy / length
    h = head * length
    out = []
    for sign in (1, -1):  # the head's two strokes at ±30°
        c, s = np.cos(np.radians(150)), sign * np.sin(np.radians(150))
        hx, hy = tip_x + h * (c * ux - s * uy), tip_y + h * (s * ux + c * uy)
        out.append(np.stack([tip_x, tip_y, hx, hy], axis=1))
    shaft = np.stack([x, y, tip_x, tip_y], axis=1)
    segs = np.concatenate([shaft, *out]).reshape(-1, 2)
    return segs


def _cell(grid, rect, x_nm: float, y_nm: float):
    """The entry of a grid (drawn over ``rect``, in nm) at a point, else None."""
    if grid is None or rect is None:
        return None
    my, mx = grid.shape[:2]
    j = int(np.floor((y_nm - rect.top()) / rect.height() * my))
    i = int(np.floor((x_nm - rect.left()) / rect.width() * mx))
    return grid[j, i] if 0 <= i < mx and 0 <= j < my else None


def _cell_value(values, rect, x_nm: float, y_nm: float) -> float | None:
    """The finite value of a map (drawn over ``rect``, in nm) at a point, else None."""
    value = _cell(values, rect, x_nm, y_nm)
    if value is not None and np.isfinite(value):
        return float(value)
    return None

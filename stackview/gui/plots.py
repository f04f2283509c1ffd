"""Small plot panels: the FFT of the image or ROI, and the line profile."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

MAX_FFT_PX = 1024
#: the view onto the lattice spans at least this many first-order radii around k = 0
FFT_ZOOM_ORDERS = 3.0
#: ... and the farthest circled reflection times this
FFT_ZOOM_MARGIN = 1.2


def log_power_spectrum(image: np.ndarray) -> np.ndarray:
    """log(1 + |FFT|²) of the central square crop (at most 1024 px, Hann window), centred.

    A cheap display quantity only: calibration uses :mod:`stackview.analysis.calibration`.
    """
    img = np.asarray(image)
    n = min(min(img.shape), MAX_FFT_PX)
    r0, c0 = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
    # crop before converting: a float64 copy of a whole 8k² image was 0.6 GB and 2 s
    img = img[r0:r0 + n, c0:c0 + n].astype(np.float64)
    img = (img - img.mean()) * np.outer(np.hanning(n), np.hanning(n))
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2).astype(np.float32)


class FftView(QWidget):
    """Live FFT (log power) of the whole image or of the rectangular ROI, axes in 1/nm.

    The lattice reflections the calibration used are circled (:meth:`set_reflections`, in
    cycles/px, so a new pixel size moves them with the axes) and the view is zoomed onto them:
    an atomic-resolution image is oversampled, and its whole k-range put the lattice in a few
    central pixels. ky points down, as y in the image, so the spots lie as the lattice does.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.widget = pg.PlotWidget()
        self.widget.setAspectLocked(True)
        self.widget.invertY(True)
        self.widget.setLabel("bottom", "kx", units="1/nm")
        self.widget.setLabel("left", "ky", units="1/nm")
        for side in ("bottom", "left"):  # no SI prefix on 1/nm (it showed "m1/nm")
            self.widget.getAxis(side).enableAutoSIPrefix(False)
        self.item = pg.ImageItem()
        self.widget.addItem(self.item)
        self.marks = pg.ScatterPlotItem(symbol="o", size=15, pen=pg.mkPen("y", width=1.5),
                                        brush=None, pxMode=True)
        self.marks.setZValue(10)
        self.widget.addItem(self.marks)
        self.use_roi = QCheckBox("FFT of the ROI only")
        self.zoom_lattice = QCheckBox("Zoom to the lattice")
        self.zoom_lattice.setChecked(True)
        self.zoom_lattice.setToolTip("Show the reflections the calibration used (circled) "
                                     "instead of the whole k-range up to Nyquist")
        self.zoom_lattice.toggled.connect(lambda *_: self.fit())
        self.info = QLabel("log power spectrum")
        self.info.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.use_roi)
        top.addWidget(self.zoom_lattice)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.widget, 1)
        layout.addWidget(self.info)
        self.spectrum: np.ndarray | None = None
        self.pixel_size_nm: float | None = None
        self.reflections = None  # stackview.gui.reflections.Reflections, or None

    def show_fft(self, image: np.ndarray | None, pixel_size_nm: float) -> None:
        if image is None or min(image.shape) < 4:
            self.item.clear()
            self.spectrum = None
            self.marks.setData([], [])
            return
        self.spectrum = log_power_spectrum(image)
        self.pixel_size_nm = float(pixel_size_nm)
        n = self.spectrum.shape[0]
        dk = 1.0 / (n * self.pixel_size_nm)  # 1/nm per FFT pixel
        # pixel j holds frequency (j - n//2) dk (fftshift): its centre, not its corner, there
        k0 = -(n // 2 + 0.5) * dk
        # levels with the image (an ImageItem of floats without levels crashed in paint);
        # fit() then sets them from the part shown
        self.item.setImage(self.spectrum, levels=self._levels(self.spectrum))
        self.item.setRect(QRectF(k0, k0, n * dk, n * dk))
        self._draw_reflections()
        self.fit()

    def set_reflections(self, reflections) -> None:
        """Circle ``reflections`` (:class:`stackview.gui.reflections.Reflections` or None)."""
        self.reflections = reflections if reflections is not None and len(reflections) else None
        self._draw_reflections()
        self.fit()

    def reflections_nm(self) -> np.ndarray:
        """The circled reflections' (kx, ky) in 1/nm ((0, 2) when there are none)."""
        if self.reflections is None or self.pixel_size_nm is None:
            return np.zeros((0, 2))
        return np.asarray(self.reflections.vectors_px, dtype=float) / self.pixel_size_nm

    def lattice_zoom_nm(self) -> float | None:
        """Half-width (1/nm) of the view onto the lattice: the farthest circled reflection
        with a margin, and at least a few first-order radii; None without reflections."""
        k = self.reflections_nm()
        if not len(k):
            return None
        first = self.reflections.first_order_px / self.pixel_size_nm
        nyquist = 0.5 / self.pixel_size_nm
        return float(min(max(FFT_ZOOM_ORDERS * first,
                             FFT_ZOOM_MARGIN * np.hypot(k[:, 0], k[:, 1]).max()), nyquist))

    def fit(self) -> None:
        """Zoom onto the lattice (when asked and known), else show the whole k-range; set the
        levels from what is shown, so the reflections stand out of the background."""
        if self.spectrum is None:
            return
        zoom = self.lattice_zoom_nm() if self.zoom_lattice.isChecked() else None
        n = self.spectrum.shape[0]
        if zoom is None:
            region = self.spectrum
        else:
            half = int(np.ceil(zoom * n * self.pixel_size_nm)) + 1
            c = n // 2
            region = self.spectrum[max(c - half, 0):c + half + 1, max(c - half, 0):c + half + 1]
        self.item.setLevels(self._levels(region))
        if zoom is None:
            self.widget.autoRange()
        else:
            self.widget.setRange(xRange=(-zoom, zoom), yRange=(-zoom, zoom), padding=0)

    @staticmethod
    def _levels(spectrum: np.ndarray) -> tuple[float, float]:
        # 99.99th: in an oversampled image the low-k envelope fills more than 0.1 % of the
        # spectrum, and a 99.9th-percentile ceiling saturated it, hiding the lattice peaks
        lo, hi = (float(v) for v in np.percentile(spectrum, [50, 99.99]))
        return lo, hi if hi > lo else lo + 1.0

    def _draw_reflections(self) -> None:
        k = self.reflections_nm()
        self.marks.setData(k[:, 0], k[:, 1])
        if self.reflections is None or self.pixel_size_nm is None:  # (drawn with the spectrum)
            self.info.setText("log power spectrum")
            return
        what = ("the calibration used" if self.reflections.source == "calibration"
                else "of the lattice in the FFT")
        first = self.reflections.first_order_px / self.pixel_size_nm
        self.info.setText(f"log power spectrum; {len(k)} reflections {what} circled "
                          f"(first order {first:.2f} 1/nm)")


class ProfileView(QWidget):
    """Intensity along the viewer's line segment (nm)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.widget = pg.PlotWidget()
        self.widget.setLabel("bottom", "distance", units="nm")
        self.widget.getAxis("bottom").enableAutoSIPrefix(False)  # never "mnm"
        self.widget.setLabel("left", "intensity")
        self.curve = self.widget.plot(pen=pg.mkPen("m", width=2))
        self.enabled = QCheckBox("Show the profile line on the image")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.enabled)
        layout.addWidget(self.widget)

    def show_profile(self, profile) -> None:
        if profile is None:
            self.curve.setData([], [])
            return
        self.curve.setData(*profile)

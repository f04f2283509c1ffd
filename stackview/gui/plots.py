"""Small plot panels: the FFT of the image or ROI, and the line profile."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QCheckBox, QVBoxLayout, QWidget

MAX_FFT_PX = 1024


def log_power_spectrum(image: np.ndarray) -> np.ndarray:
    """log(1 + |FFT|²) of the central square crop (at most 1024 px, Hann window), centred.

    A cheap display quantity only: calibration uses :mod:`stackview.io.calibration`.
    """
    img = np.asarray(image)
    n = min(min(img.shape), MAX_FFT_PX)
    r0, c0 = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
    # crop before converting: a float64 copy of a whole 8k² image was 0.6 GB and 2 s
    img = img[r0:r0 + n, c0:c0 + n].astype(np.float64)
    img = (img - img.mean()) * np.outer(np.hanning(n), np.hanning(n))
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2).astype(np.float32)


class FftView(QWidget):
    """Live FFT (log power) of the whole image or of the rectangular ROI, axes in 1/nm."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.widget = pg.PlotWidget()
        self.widget.setAspectLocked(True)
        self.widget.setLabel("bottom", "kx", units="1/nm")
        self.widget.setLabel("left", "ky", units="1/nm")
        for side in ("bottom", "left"):  # no SI prefix on 1/nm (it showed "m1/nm")
            self.widget.getAxis(side).enableAutoSIPrefix(False)
        self.item = pg.ImageItem()
        self.widget.addItem(self.item)
        self.use_roi = QCheckBox("FFT of the ROI only")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.use_roi)
        layout.addWidget(self.widget)
        self.spectrum: np.ndarray | None = None

    def show_fft(self, image: np.ndarray | None, pixel_size_nm: float) -> None:
        if image is None or min(image.shape) < 4:
            self.item.clear()
            self.spectrum = None
            return
        self.spectrum = log_power_spectrum(image)
        n = self.spectrum.shape[0]
        k_max = 1.0 / (2 * pixel_size_nm)
        # 99.99th: in an oversampled image the low-k envelope fills more than 0.1 % of the
        # spectrum, and a 99.9th-percentile ceiling saturated it, hiding the lattice peaks
        lo, hi = np.percentile(self.spectrum, [50, 99.99])
        self.item.setImage(self.spectrum, levels=(lo, hi))
        self.item.setRect(QRectF(-k_max, -k_max, 2 * k_max * n / n, 2 * k_max))
        self.widget.autoRange()


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

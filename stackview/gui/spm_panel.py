"""The analysis panel: calibration, material and model, SPM window/stride/refine, ROI, Run/Cancel.

In the window the panel is a view of the session's :class:`~stackview.session.model.Settings`
(:meth:`SpmPanel.show_settings` shows them, :meth:`SpmPanel.widget_settings` reads what the
user set, and :mod:`stackview.gui.session_binding` connects the two); on its own,
:meth:`SpmPanel.settings` returns :class:`stackview.gui.tasks.AnalysisSettings`. The main
window runs the jobs.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from stackview.gui.tasks import AnalysisSettings

DEFAULT_MODEL = "(material default)"


class WrappingLabel(QLabel):
    """A word-wrapped label that also carries its whole text as its tooltip (the model's
    description is long: a style bundle's path in it cannot wrap everywhere)."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setToolTip(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        super().setText(text)
        self.setToolTip(text)


def _spin(lo: float, hi: float, value: float, step: float, decimals: int = 3,
          suffix: str = " nm") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    return box


class SpmPanel(QWidget):
    """Signals: ``runRequested``, ``cancelRequested``, ``autoCalibrationRequested``,
    ``pixelSizeEdited(float)``, ``windowChanged(float)``, ``roiToggled(bool)``,
    ``modelChanged()``."""

    runRequested = Signal()
    settingsEdited = Signal()  # the user changed a setting (not the model or material)
    cancelRequested = Signal()
    autoCalibrationRequested = Signal()
    pixelSizeEdited = Signal(float)
    windowChanged = Signal(float)
    roiToggled = Signal(bool)
    modelChanged = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._user_pixel_size = False
        self._showing = False

        cal = QGroupBox("Calibration")
        self.pixel_size = _spin(0.0001, 10.0, 0.01, 0.001, decimals=5, suffix=" nm/px")
        self.pixel_size.setToolTip("Pixel size; type a value to override the file's")
        self.pixel_size.valueChanged.connect(self._pixel_edited)
        self.auto_button = QPushButton("Auto")
        self.auto_button.setToolTip("Measure the pixel size from the FFT lattice peaks and "
                                    "the material's cell")
        self.auto_button.clicked.connect(self.autoCalibrationRequested)
        self.cal_source = QLabel("no image")
        self.cal_source.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.pixel_size, 1)
        row.addWidget(self.auto_button)
        form = QFormLayout(cal)
        form.addRow("Pixel size", row)
        form.addRow(self.cal_source)

        spm = QGroupBox("Strided pattern matching")
        self.material = QComboBox()
        self.model = QComboBox()
        self.model_info = WrappingLabel("")
        self.window_nm = _spin(0.1, 50.0, 2.0, 0.1)
        self.window_nm.setToolTip("Window side; a model analyses windows of its own size "
                                  "(the yellow square on the image)")
        self.window_nm.valueChanged.connect(self.windowChanged)
        self.window_nm.valueChanged.connect(self._edited)
        self.stride_nm = _spin(0.01, 50.0, 0.5, 0.1)
        self.refine = QCheckBox("Two-level: refine around interfaces")
        self.fine_stride_nm = _spin(0.01, 10.0, 0.1, 0.05)
        self.fine_stride_nm.setEnabled(False)
        self.refine.toggled.connect(self.fine_stride_nm.setEnabled)
        self.views = QSpinBox()
        self.views.setRange(1, 8)
        self.views.setValue(1)
        self.views.setToolTip("Test-time views per window: more than 1 adds an uncertainty map "
                              "(their spread) at about that many times the time; measured, "
                              "they do not make the slip more accurate")
        self.mode = QComboBox()
        for text, data in (("Auto", "auto"), ("Window by window", "window"),
                           ("Dense (shared passes)", "dense")):
            self.mode.addItem(text, data)
        self.mode.setToolTip("How the windows are read: one by one, or all from shared passes "
                             "of the network over the image (several times faster at fine "
                             "strides; models trained with context, within ~0.03 Å of the window "
                             "mode on ResNet-18). Auto: "
                             "dense where the model allows it and it costs less (strides below "
                             "0.6 of the window with its margins: about 2.5 nm for ReS2)")
        self.mode.currentIndexChanged.connect(self._edited)
        self.undistort = QCheckBox("Undo the scan distortion")
        self.undistort.setChecked(True)
        self.undistort.setToolTip("Undo the fast/slow-scan scale and shear measured from the "
                                  "lattice before the model reads the windows (as "
                                  "'stackview analyze'; off: --no-undistort)")
        self.fit = QCheckBox("Fit the simulation to every window")
        self.fit.setToolTip("Refine each window's reading by fitting the incoherent simulation "
                            "to it: fitted labels with their uncertainty, NCC and reduced χ² in "
                            "the summary and the exported map.csv (as 'stackview analyze --fit')")
        self.use_roi = QCheckBox("Only inside the rectangular ROI")
        self.use_roi.toggled.connect(self.roiToggled)
        for box in (self.stride_nm, self.fine_stride_nm, self.views):
            box.valueChanged.connect(self._edited)
        for box in (self.refine, self.undistort, self.fit, self.use_roi):
            box.toggled.connect(self._edited)
        self.model.currentIndexChanged.connect(lambda *_: self.modelChanged.emit())
        self.material.currentIndexChanged.connect(lambda *_: self.modelChanged.emit())
        form2 = QFormLayout(spm)
        form2.addRow("Material", self.material)
        form2.addRow("Model", self.model)
        form2.addRow(self.model_info)
        form2.addRow("Window", self.window_nm)
        form2.addRow("Stride", self.stride_nm)
        form2.addRow(self.refine)
        form2.addRow("Fine stride", self.fine_stride_nm)
        form2.addRow("Views", self.views)
        form2.addRow("Reading", self.mode)
        form2.addRow(self.undistort)
        form2.addRow(self.fit)
        form2.addRow(self.use_roi)

        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.run_button.clicked.connect(self.runRequested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(cal)
        layout.addWidget(spm)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def _edited(self, *_) -> None:
        if not self._showing:
            self.settingsEdited.emit()

    def widget_settings(self) -> dict:
        """What the widgets say, as :class:`~stackview.session.model.Settings` fields."""
        return {"material": self.material.currentText() or None,
                "model": self.model_choice(), "window_nm": self.window_nm.value(),
                "stride_nm": self.stride_nm.value(), "refine": self.refine.isChecked(),
                "fine_stride_nm": self.fine_stride_nm.value(), "n_views": self.views.value(),
                "undistort": self.undistort.isChecked(), "fit": self.fit.isChecked(),
                "use_roi": self.use_roi.isChecked(), "mode": self.mode.currentData()}

    def show_settings(self, settings) -> None:
        """Show a session's :class:`~stackview.session.model.Settings` (no signal is sent
        back as an edit)."""
        self._showing = True
        boxes = (self.material, self.model, self.window_nm, self.stride_nm, self.refine,
                 self.fine_stride_nm, self.views, self.undistort, self.fit, self.use_roi,
                 self.mode)
        blocked = [box.blockSignals(True) for box in boxes[:2]]
        try:
            if settings.material and self.material.findText(settings.material) >= 0:
                self.material.setCurrentText(settings.material)
            idx = self.model.findData(settings.model) if settings.model else 0
            if idx < 0:
                self.model.addItem(settings.model, settings.model)
                idx = self.model.count() - 1
            self.model.setCurrentIndex(idx)
            self.window_nm.setValue(settings.window_nm)
            self.stride_nm.setValue(settings.stride_nm)
            self.refine.setChecked(settings.refine)
            self.fine_stride_nm.setValue(settings.fine_stride_nm)
            self.views.setValue(settings.n_views)
            self.undistort.setChecked(settings.undistort)
            self.fit.setChecked(settings.fit)
            self.use_roi.setChecked(settings.use_roi)
            self.mode.setCurrentIndex(max(0, self.mode.findData(settings.mode)))
        finally:
            for box, was in zip(boxes[:2], blocked, strict=False):
                box.blockSignals(was)
            self._showing = False

    # --- calibration -------------------------------------------------------------------------
    def _pixel_edited(self, value: float) -> None:
        if self.pixel_size.signalsBlocked():
            return
        self._user_pixel_size = True
        self.cal_source.setText(f"pixel size {value:g} nm/px given by the user")
        self.pixel_size.setStyleSheet("")
        self.pixel_size.setEnabled(True)
        self.pixelSizeEdited.emit(value)

    def show_calibration(self, pixel_size_nm: float | None, message: str,
                         user: bool = False) -> None:
        """Display a calibration without marking it as the user's (unless ``user``)."""
        self.pixel_size.blockSignals(True)
        if pixel_size_nm is not None:
            self.pixel_size.setValue(pixel_size_nm)
        self.pixel_size.blockSignals(False)
        self._user_pixel_size = user
        self.cal_source.setText(message)
        # an unknown calibration is shown in red until the user types one
        self.pixel_size.setStyleSheet("" if pixel_size_nm is not None else "color: red")

    def pixel_size_override(self) -> float | None:
        """The pixel size to pass to the analysis: only a value the user gave (or confirmed
        with Auto), so by default the analysis calibrates exactly as the CLI does."""
        return self.pixel_size.value() if self._user_pixel_size else None

    # --- models ------------------------------------------------------------------------------
    def set_materials(self, names: list[str], current: str | None = None) -> None:
        self.material.blockSignals(True)
        self.material.clear()
        self.material.addItems(names)
        if current in names:
            self.material.setCurrentText(current)
        self.material.blockSignals(False)

    def set_models(self, entries, current: str | None = None) -> None:
        """Fill the model list from registry entries (bundled and user library)."""
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem(DEFAULT_MODEL, None)
        for e in entries:
            card = e.card
            self.model.addItem(f"{e.name} ({card.material}, {card.task}, {e.source})",
                               str(e.path))
        if current:
            idx = self.model.findData(current)
            if idx < 0:
                self.model.addItem(current, current)
                idx = self.model.count() - 1
            self.model.setCurrentIndex(idx)
        self.model.blockSignals(False)

    def add_model_path(self, path: str) -> None:
        idx = self.model.findData(path)
        if idx < 0:
            self.model.addItem(path, path)
            idx = self.model.count() - 1
        self.model.setCurrentIndex(idx)

    def model_choice(self) -> str | None:
        return self.model.currentData()

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def settings(self, roi_nm=None) -> AnalysisSettings:
        return AnalysisSettings(
            model=self.model_choice(),
            material=self.material.currentText() or None,
            pixel_size_nm=self.pixel_size_override(),
            window_nm=self.window_nm.value(),
            stride_nm=self.stride_nm.value(),
            refine=self.refine.isChecked(),
            fine_stride_nm=self.fine_stride_nm.value(),
            roi_nm=tuple(roi_nm) if (roi_nm is not None and self.use_roi.isChecked()) else None,
            n_views=self.views.value(),
            undistort=self.undistort.isChecked(),
            fit=self.fit.isChecked(),
            mode=self.mode.currentData(),
        )

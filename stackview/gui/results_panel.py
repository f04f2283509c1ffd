"""The results panel: which map is overlaid, its opacity, slip arrows, the statistics."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

UNCERTAINTY = "uncertainty"
DEVIATION = "|Δd| (Å)"


class ResultsPanel(QWidget):
    """Signals: ``layerChanged(str)``, ``opacityChanged(float)``, ``mapToggled(bool)``,
    ``arrowsToggled(bool)``."""

    layerChanged = Signal(str)
    opacityChanged = Signal(float)
    mapToggled = Signal(bool)
    arrowsToggled = Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.layer = QComboBox()
        self.layer.currentTextChanged.connect(self.layerChanged)
        self.show_map = QCheckBox("Show the map over the image")
        self.show_map.setChecked(True)
        self.show_map.toggled.connect(self.mapToggled)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100))
        self.arrows = QCheckBox("Slip-vector arrows (Δd from the reference region)")
        self.arrows.toggled.connect(self.arrowsToggled)
        self.stats = QLabel("No analysis yet.")
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Map", self.layer)
        form.addRow(self.show_map)
        form.addRow("Opacity", self.opacity)
        form.addRow(self.arrows)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.stats)
        layout.addStretch(1)

    def set_layers(self, names, has_field: bool) -> None:
        current = self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems([*names, UNCERTAINTY] + ([DEVIATION] if has_field else []))
        if self.layer.findText(current) >= 0:
            self.layer.setCurrentText(current)
        self.layer.blockSignals(False)
        self.arrows.setEnabled(has_field)

    def show_summary(self, summary: dict, names) -> None:
        """The numbers ``stackview analyze`` prints, one line each."""
        lines = [f"{summary['n_patches']} windows in {summary['seconds']:.1f} s "
                 f"({summary['patches_per_second']} windows/s)",
                 f"pixel {summary['pixel_size_nm']:.5g} nm ({summary['calibration_source']}), "
                 f"window {summary['window_nm']:g} nm, stride {summary['stride_nm']:g} nm, "
                 f"mode {summary['mode']}"]
        for n in names:
            if f"{n}_median" in summary:
                lines.append(f"{n}: median {summary[n + '_median']:.3f}, "
                             f"IQR {summary[n + '_iqr']:.3f}")
        lines += [f"note: {note}" for note in summary.get("notes", [])]
        self.stats.setText("\n".join(lines))

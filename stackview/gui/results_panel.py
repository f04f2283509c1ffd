"""The results panel: whether the result can be trusted, which map is overlaid (for a family
model's map, the stacking classes first), its opacity, slip arrows, the statistics (with the
windows per family and class), the calibration and the scan distortion."""

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

from stackview.gui.stacking_view import STACKING, summary_lines

UNCERTAINTY = "uncertainty"
DEVIATION = "|Δd| (Å)"
NCC = "re-simulation NCC"

#: the trust line's look: an unreliable result must be impossible to miss
UNRELIABLE_STYLE = ("QLabel { background: #c62828; color: white; font-weight: bold; "
                    "padding: 6px; border-radius: 3px; }")
RELIABLE_STYLE = "QLabel { color: #1b5e20; font-weight: bold; padding: 2px; }"


def trust_text(summary: dict) -> str:
    """'UNRELIABLE — reason' or 'Reliable: …' for a summary (``AnalysisResult.summary()``)."""
    if not summary.get("reliable", True):
        return "UNRELIABLE — " + (summary.get("reliable_reason") or "the analysis did not say why")
    if "resimulation_ncc_median" in summary:
        return (f"Reliable: the windows match their re-simulations (median NCC "
                f"{summary['resimulation_ncc_median']:.2f})")
    return "Reliable (no re-simulation check was made)"


def distortion_text(distortion: dict) -> str:
    """One line for ``summary['scan_distortion']``: the fast/slow-scan scales relative to 1
    and the shear, in per cent, and whether the analysis undid it."""
    parts = []
    for key, label in (("scale_x", "fast-scan scale"), ("scale_y", "slow-scan scale")):
        if isinstance(distortion.get(key), (int, float)):
            parts.append(f"{label} {100 * (distortion[key] - 1):+.2f} %")
    for key, value in distortion.items():  # shear, drift, …: fractions
        if key in ("scale_x", "scale_y", "fast_slow_ratio", "corrected"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{key.replace('_', ' ')} {100 * value:+.2f} %")
    done = distortion.get("corrected")
    state = "" if done is None else (" (undone)" if done else " (not undone)")
    return f"scan distortion{state}: " + (", ".join(parts) or "none measured")


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
        self.trust = QLabel("")
        self.trust.setWordWrap(True)
        self.trust.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.trust.hide()  # until there is a result to judge
        self.stats = QLabel("No analysis yet.")
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Map", self.layer)
        form.addRow(self.show_map)
        form.addRow("Opacity", self.opacity)
        form.addRow(self.arrows)
        layout = QVBoxLayout(self)
        layout.addWidget(self.trust)
        layout.addLayout(form)
        layout.addWidget(self.stats)
        layout.addStretch(1)

    def set_layers(self, names, has_field: bool, has_ncc: bool = False,
                   has_stacking: bool = False) -> None:
        """The layers of a result. ``has_stacking``: a family model's map, whose categorical
        stacking-class layer comes first and is shown when the previous result had none (the
        layer shown is kept between results of the same kind)."""
        current = self.layer.currentText()
        had_stacking = self.layer.findText(STACKING) >= 0
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(([STACKING] if has_stacking else []) + [*names, UNCERTAINTY]
                            + ([DEVIATION] if has_field else []) + ([NCC] if has_ncc else []))
        if has_stacking and not had_stacking:
            self.layer.setCurrentText(STACKING)
        elif self.layer.findText(current) >= 0:
            self.layer.setCurrentText(current)
        self.layer.blockSignals(False)
        self.arrows.setEnabled(has_field)

    def show_summary(self, summary: dict, names, poor_windows: tuple[int, int, float] | None
                     = None) -> None:
        """The trust line and the numbers ``stackview analyze`` prints, one line each.

        ``poor_windows``: (poor, scored, threshold) window counts of the re-simulation check.
        """
        reliable = summary.get("reliable", True)
        self.trust.setText(trust_text(summary))
        self.trust.setStyleSheet(RELIABLE_STYLE if reliable else UNRELIABLE_STYLE)
        self.trust.show()
        lines = [f"{summary['n_patches']} windows in {summary['seconds']:.1f} s "
                 f"({summary['patches_per_second']} windows/s)",
                 f"pixel {summary['pixel_size_nm']:.5g} nm ({summary['calibration_source']}"
                 + (f", confidence {summary['calibration_confidence']:.2f}"
                    if summary.get("calibration_confidence") is not None else "")
                 + f"), window {summary['window_nm']:g} nm, stride {summary['stride_nm']:g} nm, "
                 f"mode {summary['mode']}"]
        reading = summary.get("lattice_reading")
        if isinstance(reading, dict) and reading.get("confidence") is not None:
            best = reading.get("best_ncc")
            lines.append(f"lattice reading: confidence {reading['confidence']:.2f}"
                         + (f", best re-simulation NCC {best:.2f}" if best is not None else ""))
        if isinstance(summary.get("scan_distortion"), dict):
            lines.append(distortion_text(summary["scan_distortion"]))
        if poor_windows is not None and poor_windows[1]:
            poor, scored, threshold = poor_windows
            lines.append(f"re-simulation check: {poor} of {scored} windows below NCC "
                         f"{threshold:g} (greyed on the map)")
        lines += summary_lines(summary.get("statistics") or {}, names)
        for n in names:
            if f"{n}_median" in summary:
                lines.append(f"{n}: median {summary[n + '_median']:.3f}, "
                             f"IQR {summary[n + '_iqr']:.3f}")
        fit = summary.get("fit")
        if isinstance(fit, dict) and fit.get("n_fitted"):
            for n in names:
                if f"{n}_median" in fit:
                    lines.append(f"fit {n}: median {fit[n + '_median']:.3f}, σ "
                                 f"{fit['sigma_' + n + '_median']:.3f}")
            lines.append(f"fit: NCC {fit['ncc_median']:.2f}, reduced χ² "
                         f"{fit['chi2_red_median']:.2f}; {fit['moved_more_than_sigma']} of "
                         f"{fit['n_windows']} windows moved by more than their σ")
        lines += [f"note: {note}" for note in summary.get("notes", [])]
        self.stats.setText("\n".join(lines))

    def clear_summary(self, text: str) -> None:
        self.trust.hide()
        self.stats.setText(text)

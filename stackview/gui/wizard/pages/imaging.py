"""The Imaging page: the microscope's optics and the model's pixel size."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
)

from stackview.gui.wizard.pages.base import StepPage, _spin
from stackview.gui.wizard.project import Project


class ImagingPage(StepPage):
    step = "imaging"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Imaging conditions",
                         "The microscope your experimental images come from.")
        from stackview.simulation import PRESETS

        form = QFormLayout()
        self.preset = QComboBox()
        self.preset.addItems(["custom", *PRESETS])
        self.preset.currentTextChanged.connect(self._apply_preset)
        self.kv = _spin(1, 2000, 300, 1, suffix=" kV")
        self.convergence = _spin(0.1, 200, 21.3, 2, suffix=" mrad")
        self.adf_inner = _spin(0, 1000, 39, 1, suffix=" mrad")
        self.adf_outer = _spin(1, 1000, 200, 1, suffix=" mrad")
        self.defocus_lo = _spin(-1000, 1000, 35, 1, suffix=" Å")
        self.defocus_hi = _spin(-1000, 1000, 45, 1, suffix=" Å")
        self.source_lo = _spin(0, 10, 0.6, 2, 0.05, " Å")
        self.source_hi = _spin(0, 10, 0.7, 2, 0.05, " Å")
        self.sampling = _spin(0.002, 0.5, 0.016, 4, 0.001, " nm/px")
        form.addRow("Preset (the paper's)", self.preset)
        form.addRow("Accelerating voltage", self.kv)
        form.addRow("Convergence semi-angle", self.convergence)
        form.addRow("ADF inner angle", self.adf_inner)
        form.addRow("ADF outer angle", self.adf_outer)
        form.addRow("Defocus from", self.defocus_lo)
        form.addRow("Defocus to", self.defocus_hi)
        form.addRow("Source size from", self.source_lo)
        form.addRow("Source size to", self.source_hi)
        form.addRow("Model pixel size", self.sampling)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.error)
        self.layout_.addStretch(1)

    def _apply_preset(self, name: str) -> None:
        from stackview.simulation import PRESETS

        p = PRESETS.get(name)
        if p is None:
            return
        self.kv.setValue(p.energy_kV)
        self.convergence.setValue(p.convergence_mrad)
        self.adf_inner.setValue(p.adf_inner_mrad)
        self.adf_outer.setValue(p.adf_outer_mrad)
        self.sampling.setValue(0.012 if name.startswith("ReS2") else 0.006)

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        im = self.project["imaging"]
        self.preset.blockSignals(True)
        self.preset.setCurrentText(im["preset"] if im["preset"] else "custom")
        self.preset.blockSignals(False)
        self.kv.setValue(im["energy_kV"])
        self.convergence.setValue(im["convergence_mrad"])
        self.adf_inner.setValue(im["adf_inner_mrad"])
        self.adf_outer.setValue(im["adf_outer_mrad"])
        self.defocus_lo.setValue(min(im["defocus_A"]))
        self.defocus_hi.setValue(max(im["defocus_A"]))
        self.source_lo.setValue(min(im["source_size_A"]))
        self.source_hi.setValue(max(im["source_size_A"]))
        self.sampling.setValue(im["sampling_A"] / 10)

    def check_and_save(self):
        from stackview.simulation import Optics

        if self.adf_outer.value() <= self.adf_inner.value():
            return self.fail("The ADF outer angle must be larger than the inner angle.")
        if self.defocus_hi.value() < self.defocus_lo.value():
            return self.fail("The defocus range runs from low to high: swap the two values.")
        if self.source_hi.value() < self.source_lo.value():
            return self.fail("The source-size range runs from low to high: swap the two values.")
        optics = Optics(energy_kV=self.kv.value(), convergence_mrad=self.convergence.value(),
                        adf_inner_mrad=self.adf_inner.value(),
                        adf_outer_mrad=self.adf_outer.value())
        sampling_A = 10 * self.sampling.value()
        if sampling_A > 4 * optics.nyquist_sampling_A:
            return self.fail(f"A pixel size of {self.sampling.value():g} nm cannot resolve "
                             f"this probe; use at most {0.4 * optics.nyquist_sampling_A:.3f} nm.")
        if not 0.02 <= sampling_A <= 2.0:
            return self.fail("The model pixel size must be between 0.002 and 0.2 nm.")
        lo_d, hi_d = self.defocus_lo.value(), self.defocus_hi.value()
        lo_s, hi_s = self.source_lo.value(), self.source_hi.value()
        self.project.update(
            "imaging", preset=self.preset.currentText(), energy_kV=optics.energy_kV,
            convergence_mrad=optics.convergence_mrad, adf_inner_mrad=optics.adf_inner_mrad,
            adf_outer_mrad=optics.adf_outer_mrad,
            defocus_A=sorted({round(v, 4) for v in (lo_d, (lo_d + hi_d) / 2, hi_d)}),
            source_size_A=sorted({round(v, 4) for v in (lo_s, (lo_s + hi_s) / 2, hi_s)}),
            sampling_A=round(sampling_A, 6))
        return True

"""The Material page: a built-in material, or a new one from a structure file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
)

from stackview.gui.wizard.pages.base import StepPage, _spin
from stackview.gui.wizard.project import Project


class MaterialPage(StepPage):
    step = "material"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Material",
                         "A built-in material, or a new one from a structure file.")
        form = QFormLayout()
        self.material = QComboBox()
        self.structure = QLineEdit()
        self.structure.setPlaceholderText("CIF, xyz or POSCAR of a monolayer or layered bulk")
        browse = QPushButton("Import…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.structure, 1)
        row.addWidget(browse)
        self.new_name = QLineEdit()
        self.new_name.setPlaceholderText("name of the new material, e.g. WS2")
        self.layers = _spin(2, 3, 2)
        self.task = QComboBox()
        self.task.addItems(["slip", "twist"])
        form.addRow("Material", self.material)
        form.addRow("or structure file", row)
        form.addRow("New material name", self.new_name)
        form.addRow("Layers", self.layers)
        form.addRow("Task", self.task)
        self.layout_.addLayout(form)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.layout_.addWidget(self.info)
        self.layout_.addWidget(self.error)
        self.layout_.addStretch(1)
        for w in (self.material.currentTextChanged, self.layers.valueChanged,
                  self.task.currentTextChanged):
            w.connect(lambda *_: self._show_info())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Structure file", "",
                                              "Structures (*.cif *.xyz *.vasp POSCAR*);;All (*)")
        if path:
            self.structure.setText(path)
            if not self.new_name.text():
                self.new_name.setText(Path(path).stem.split("_")[0])

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        from stackview.materials import list_materials

        m = self.project["material"]
        self.material.blockSignals(True)
        self.material.clear()
        self.material.addItems(list_materials())
        if m["name"] and m["name"] in list_materials():
            self.material.setCurrentText(m["name"])
        self.material.blockSignals(False)
        self.structure.setText(m["structure"])
        self.new_name.setText(m["name"] if m["structure"] else "")
        self.layers.setValue(int(m["layers"]))
        self.task.setCurrentText(m["task"])
        self._show_info()

    def _show_info(self) -> None:
        from stackview.materials import get_material

        try:
            mat = get_material(self.material.currentText())
        except Exception:  # noqa: BLE001  (no material yet)
            self.info.setText("")
            return
        self.info.setText(self.describe(mat))

    def describe(self, mat) -> str:
        text = (f"{mat.name} ({mat.formula}): a = {mat.a_A:.3f} Å, b = {mat.b_A:.3f} Å, "
                f"γ = {mat.gamma_deg:.1f}°, {mat.n_atoms} atoms per cell, interlayer "
                f"{mat.interlayer_A:.2f} Å.")
        try:
            from stackview.core.labels import SlipLabels, TwistLabels

            if self.task.currentText() == "twist":
                lo, hi = TwistLabels(mat.name).domain_deg
                text += f" Twist domain θ ∈ [{lo:g}°, {hi:g}°)."
            else:
                bounds = SlipLabels(mat.name, layers=self.layers.value()).domain_bounds_A()
                text += " Slip domain: " + ", ".join(
                    f"[{lo:.2f}, {hi:.2f}] Å" for lo, hi in bounds) + "."
        except Exception:  # noqa: BLE001  (informative only)
            pass
        return text

    def check_and_save(self):
        from stackview.materials import (
            get_material,
            list_materials,
            material_from_file,
            save_user_material,
        )

        task, layers = self.task.currentText(), self.layers.value()
        if task == "twist" and layers != 2:
            return self.fail("Twist models are for bilayers: set Layers to 2 or choose slip.")
        structure = self.structure.text().strip()
        if structure:
            name = self.new_name.text().strip()
            if not name:
                return self.fail("Give the new material a name (letters, digits, - and _).")
            if not Path(structure).is_file():
                return self.fail(f"The structure file {structure} does not exist; "
                                 "choose it with Import….")
            mat = material_from_file(structure, name=name)
            if name in list_materials() and self.project["material"]["name"] != name:
                return self.fail(f"A material called {name} exists already; "
                                 "choose another name or pick it from the list.")
            save_user_material(mat, overwrite=True)
        else:
            name = self.material.currentText()
            if not name:
                return self.fail("Choose a material or import a structure file.")
            mat = get_material(name)
        self.info.setText(self.describe(mat))
        self.project.update("material", name=mat.name, structure=structure, layers=layers,
                            task=task)
        return True

"""The wizard's pages (Qt widgets only; every computation is a job of :mod:`.runner`).

Each page reads its settings from the :class:`~.project.Project` when shown, validates them on
*Next* with one sentence the user can act on (shown in red on the page), and saves them. Pages
with a heavy step run it on :class:`stackview.engine.qt.Job` (the window never blocks), show
its progress, can cancel it, and show the equivalent ``stackview ...`` command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from stackview.engine.qt import Job
from stackview.gui.wizard import runner
from stackview.gui.wizard.project import Project


def _spin(lo, hi, value, decimals=None, step=None, suffix=""):
    box = QSpinBox() if decimals is None else QDoubleSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setValue(value)
    if step:
        box.setSingleStep(step)
    if suffix:
        box.setSuffix(suffix)
    return box


class StepPage(QWizardPage):
    """A page with an error line, and optionally a job runner with progress, cancel and the
    equivalent command line."""

    step = ""

    def __init__(self, project: Project, title: str, subtitle: str = "") -> None:
        super().__init__()
        self.project = project
        self.setTitle(title)
        if subtitle:
            self.setSubTitle(subtitle)
        self.layout_ = QVBoxLayout(self)
        self.error = QLabel()
        self.error.setObjectName("error")
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        self.job: Job | None = None
        self.last_error = ""

    # --- errors --------------------------------------------------------------------------
    def fail(self, sentence: str) -> bool:
        self.last_error = sentence
        self.error.setStyleSheet("color: #c0392b")
        self.error.setText(sentence)
        return False

    def clear_error(self) -> None:
        self.last_error = ""
        self.error.setText("")

    def validatePage(self) -> bool:  # noqa: N802 (Qt)
        import copy

        before = copy.deepcopy(self.project.data.get(self.step))
        try:
            ok = self.check_and_save()
        except (ValueError, OSError) as exc:
            from stackview.errors import one_sentence

            return self.fail(one_sentence(exc))
        if ok is False:
            return False
        self.clear_error()
        if self.project.data.get(self.step) != before:
            self.project.mark_done(self.step, False)  # later results depended on the old values
        self.project.mark_done(self.step)
        return True

    def check_and_save(self) -> bool | None:
        """Validate the widgets and save them into the project (raise or return False)."""
        return True

    # --- jobs ----------------------------------------------------------------------------
    def add_runner(self, run_text: str = "Run", resumable: bool = False) -> None:
        row = QHBoxLayout()
        self.run_button = QPushButton(run_text)
        self.resume_button = QPushButton("Resume") if resumable else None
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel()
        row.addWidget(self.run_button)
        if self.resume_button:
            row.addWidget(self.resume_button)
            self.resume_button.clicked.connect(lambda: self.start(resume=True))
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        self.layout_.addLayout(row)
        self.layout_.addWidget(self.status)
        self.command = QPlainTextEdit()
        self.command.setReadOnly(True)
        self.command.setMaximumHeight(70)
        self.command.setToolTip("The same step from a terminal, e.g. on a GPU machine")
        self.layout_.addWidget(QLabel("Equivalent command line:"))
        self.layout_.addWidget(self.command)
        self.run_button.clicked.connect(lambda: self.start(resume=False))
        self.cancel_button.clicked.connect(self.cancel)

    def running(self) -> bool:
        return self.job is not None  # cleared when its last signal has been handled

    def run_job(self, fn, name: str, on_done) -> None:
        self.clear_error()
        job = Job(fn, name=name, parent=self)
        self.job = job
        self._on_done = on_done
        # @Slot methods of the page, not lambdas or plain methods: PySide connects those through
        # a hidden receiver object, and their results were not always delivered (docs/wizard.md)
        job.progressed.connect(self._progressed)
        job.succeeded.connect(self._job_succeeded)
        job.failed.connect(self._job_failed)
        job.cancelled.connect(self._job_cancelled)
        self._set_busy(True)
        self.status.setText(f"{name}…")
        job.start()

    @Slot(object)
    def _job_succeeded(self, result) -> None:
        self._finished(self.sender() or self.job, self._on_done, result)

    @Slot(str, str)
    def _job_failed(self, sentence: str, details: str) -> None:
        self._finished(self.sender() or self.job, None, sentence)

    @Slot()
    def _job_cancelled(self) -> None:
        self._finished(self.sender() or self.job, None, None)

    @Slot(int, int, str)
    def _progressed(self, done: int, total: int, message: str) -> None:
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(done)
        self.status.setText(message)
        self.on_progress(done, total, message)

    def on_progress(self, done: int, total: int, message: str) -> None:
        """Live updates of a running step (previews, loss curves)."""

    def _finished(self, job: Job, on_done, result) -> None:
        job.wait()
        if self.job is job:
            self.job = None
        self._set_busy(False)
        if on_done is not None:
            try:
                on_done(result)
            except Exception as exc:  # noqa: BLE001  (a message, never a crash)
                from stackview.engine.qt import describe_error

                self.fail(describe_error(exc, self.title()))
        elif isinstance(result, str):
            self.fail(result)
            self.status.setText("failed")
        else:
            self.status.setText("cancelled — press Resume (or Run) to continue")
        self.completeChanged.emit()

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        if self.resume_button:
            self.resume_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.completeChanged.emit()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def stop_and_wait(self) -> None:
        """Cancel a running job and wait for it (closing the wizard)."""
        if self.job is not None:
            self.job.cancel()
            self.job.wait()
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.processEvents()  # deliver its last signal (saves the state)

    def start(self, resume: bool = False) -> None:
        raise NotImplementedError

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return not self.running()


# ============================================================================ material
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


# ============================================================================ imaging
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


# ============================================================================ images
class ImageTable(QTableWidget):
    """Experimental images (path, pixel size in nm); accepts dropped files."""

    filesDropped = Signal(list)

    def __init__(self) -> None:
        super().__init__(0, 2)
        self.setHorizontalHeaderLabels(["Image", "Pixel size (nm)"])
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.setTextElideMode(Qt.TextElideMode.ElideLeft)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.filesDropped.emit([u.toLocalFile() for u in event.mimeData().urls()])
        event.acceptProposedAction()


class ImagesPage(StepPage):
    step = "images"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Experimental images",
                         "Drop a few images of the material from your microscope (their style "
                         "is learnt); give the pixel size of uncalibrated ones.")
        self.table = ImageTable()
        self.table.filesDropped.connect(self.add_files)
        row = QHBoxLayout()
        add = QPushButton("Add…")
        add.clicked.connect(self._browse)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        auto = QPushButton("Calibrate empty rows from the lattice")
        auto.setToolTip("Pixel size from the FFT lattice peaks and the material's cell")
        auto.clicked.connect(self.auto_calibrate)
        row.addWidget(add)
        row.addWidget(remove)
        row.addWidget(auto)
        row.addStretch(1)
        self.layout_.addWidget(self.table)
        self.layout_.addLayout(row)
        self.layout_.addWidget(self.error)

    def _browse(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Experimental images")
        self.add_files(paths)

    def add_files(self, paths) -> None:
        from stackview.style.images import read_grey

        for p in paths:
            try:
                _, sampling_A = read_grey(p)
            except Exception:  # noqa: BLE001  (validated on Next)
                sampling_A = None
            r = self.table.rowCount()
            self.table.insertRow(r)
            item = QTableWidgetItem(str(p))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, 0, item)
            self.table.setItem(r, 1, QTableWidgetItem(f"{sampling_A / 10:g}" if sampling_A
                                                      else ""))

    def auto_calibrate(self) -> None:
        """Fill empty pixel sizes from the FFT lattice peaks (quick; the GUI thread is fine)."""
        from stackview.io.calibration import calibrate_from_lattice
        from stackview.style.images import read_grey

        notes = []
        for r in range(self.table.rowCount()):
            cell = self.table.item(r, 1)
            if cell is not None and cell.text().strip():
                continue
            path = self.table.item(r, 0).text()
            try:
                cal = calibrate_from_lattice(read_grey(path)[0], self.project["material"]["name"])
            except Exception as exc:  # noqa: BLE001  (reported as a sentence)
                from stackview.errors import one_sentence

                notes.append(f"{Path(path).name}: {one_sentence(exc)}")
                continue
            self.table.setItem(r, 1, QTableWidgetItem(f"{cal.pixel_size_nm:.5g}"))
            notes.append(f"{Path(path).name}: {cal.pixel_size_nm:.5g} nm "
                         f"(confidence {cal.confidence:.2f})")
        self.error.setStyleSheet("")
        self.error.setText("; ".join(notes))

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        self.table.setRowCount(0)
        for item in self.project["images"]:
            r = self.table.rowCount()
            self.table.insertRow(r)
            self.table.setItem(r, 0, QTableWidgetItem(item["path"]))
            nm = item.get("sampling_nm")
            self.table.setItem(r, 1, QTableWidgetItem(f"{nm:g}" if nm else ""))

    def check_and_save(self):
        from stackview.style.images import read_grey

        if self.table.rowCount() == 0:
            return self.fail("Add at least one experimental image (drop files onto the list).")
        items = []
        target_A = self.project["imaging"]["sampling_A"]
        for r in range(self.table.rowCount()):
            path = self.table.item(r, 0).text()
            name = Path(path).name
            try:
                image, _ = read_grey(path)
            except Exception:  # noqa: BLE001
                return self.fail(f"{name} cannot be read as an image; remove it or convert it "
                                 "to TIFF or PNG.")
            text = (self.table.item(r, 1).text() if self.table.item(r, 1) else "").strip()
            try:
                nm = float(text)
            except ValueError:
                return self.fail(f"Give the pixel size of {name} in nm (e.g. 0.012): the file "
                                 "carries no calibration.")
            if not 0.0005 <= nm <= 1:
                return self.fail(f"The pixel size of {name}, {nm:g} nm, is implausible; give "
                                 "it in nm per pixel (e.g. 0.012).")
            side = min(image.shape[:2]) * 10 * nm / target_A
            if side < 64:
                return self.fail(f"{name} is only {side:.0f} px at the model pixel size; use "
                                 "a larger image or a coarser model pixel size.")
            items.append({"path": path, "sampling_nm": nm})
        self.project.data["images"] = items
        self.project.save()
        return True


# ============================================================================ selection
class SelectionPage(StepPage):
    step = "selection"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Selection of simulations (Trident I)",
                         "Noise-free simulations are mapped with your images by t-SNE; those "
                         "in your images' cluster are chosen (red). Click a point to add or "
                         "remove it.")
        form = QFormLayout()
        self.candidates = _spin(4, 5000, 24)
        self.candidate_px = _spin(32, 1024, 128)
        self.keep = _spin(0, 5000, 0)
        self.keep.setSpecialValueText("the whole cluster")
        form.addRow("Candidate simulations", self.candidates)
        form.addRow("Candidate size (px)", self.candidate_px)
        form.addRow("Keep at most", self.keep)
        self.layout_.addLayout(form)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(220)
        self.plot.setLabel("bottom", "t-SNE 1")
        self.plot.setLabel("left", "t-SNE 2")
        self.sims = pg.ScatterPlotItem(size=9, pen=None)
        self.exps = pg.ScatterPlotItem(size=13, symbol="s", brush=pg.mkBrush(40, 110, 220))
        self.plot.addItem(self.sims)
        self.plot.addItem(self.exps)
        self.sims.sigClicked.connect(self._clicked)
        self.layout_.addWidget(self.plot, 1)
        self.features = QLabel()
        self.features.setWordWrap(True)
        self.layout_.addWidget(self.features)
        self.add_runner("Simulate and select")
        self.layout_.addWidget(self.error)
        self.data: dict | None = None

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        sel = self.project["selection"]
        self.candidates.setValue(int(sel["candidates"]))
        self.candidate_px.setValue(int(sel["candidate_px"]))
        self.keep.setValue(int(sel["keep"]))
        self._show_command()
        self.data = runner.load_selection_plot(self.project)
        self.redraw()

    def _save_settings(self) -> None:
        self.project.update("selection", candidates=self.candidates.value(),
                            candidate_px=self.candidate_px.value(), keep=self.keep.value())

    def _show_command(self) -> None:
        _, c1 = runner.candidates_job(self.project)
        _, c2 = runner.selection_job(self.project)
        self.command.setPlainText(c1 + "\n(export the patches as images, then)\n" + c2)

    def start(self, resume: bool = False) -> None:
        self._save_settings()
        self.project.mark_done("selection", False)
        self.project.update("selection", chosen=[])
        self._show_command()
        fn, _ = runner.candidates_job(self.project)
        self.run_job(fn, "simulating candidates", lambda _: self._select())

    def _select(self) -> None:
        fn, command = runner.selection_job(self.project)
        self.run_job(fn, "selecting", self._selected)

    def _selected(self, result) -> None:
        self.project.update("selection", chosen=list(result.chosen_names),
                            feature_kind=result.feature_kind)
        self.data = runner.load_selection_plot(self.project)
        self.status.setText(f"{len(result.chosen)} of {len(result.simulation_names)} "
                            "simulations chosen")
        self.redraw()

    def redraw(self) -> None:
        self.sims.clear()
        self.exps.clear()
        if not self.data:
            self.features.setText("Press ‘Simulate and select’.")
            return
        emb = np.asarray(self.data["embedding"], dtype=float)
        names = self.data["simulations"]
        ns = len(names)
        chosen = set(self.project["selection"]["chosen"])
        brushes = [pg.mkBrush(220, 50, 40) if n in chosen else pg.mkBrush(150, 150, 150)
                   for n in names]
        self.sims.setData(pos=emb[:ns], brush=brushes, data=list(range(ns)))
        self.exps.setData(pos=emb[ns:])
        self.features.setText(f"Features: {self.data.get('feature_kind', '?')} — "
                              f"{self.data.get('feature_note', '')}. "
                              f"{len(chosen)} chosen (red), experimental images blue.")

    def toggle(self, index: int) -> None:
        """Add or remove simulation ``index`` from the chosen set (and save)."""
        name = self.data["simulations"][index]
        chosen = list(self.project["selection"]["chosen"])
        if name in chosen:
            chosen.remove(name)
        else:
            chosen.append(name)
        runner.save_chosen(self.project, chosen)
        self.project.mark_done("selection", False)
        self.redraw()
        self.completeChanged.emit()

    def _clicked(self, item, points, *_) -> None:
        if points is not None and len(points):
            self.toggle(int(points[0].data()))

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and bool(self.project["selection"]["chosen"])

    def check_and_save(self):
        if not self.project["selection"]["chosen"]:
            return self.fail("Run the selection, or click at least one simulation to use it.")
        return True


# ============================================================================ style
class StylePage(StepPage):
    step = "style"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Style training (DRIT)",
                         "Learn your microscope's look. Hours on a CPU: use the command line on "
                         "a GPU machine, or skip it and use the physics noise model.")
        form = QFormLayout()
        self.skip = QCheckBox("Skip style training (physics noise model instead)")
        self.config = QComboBox()
        self.config.addItems(["cpu", "paper", "tiny"])
        self.iterations = _spin(0, 1_000_000, 0)
        self.iterations.setSpecialValueText("preset's")
        self.image_px = _spin(0, 2048, 0)
        self.image_px.setSpecialValueText("preset's")
        form.addRow(self.skip)
        form.addRow("Network size", self.config)
        form.addRow("Iterations", self.iterations)
        form.addRow("Training patch (px)", self.image_px)
        self.layout_.addLayout(form)
        row = QHBoxLayout()
        self.preview = QLabel("no preview yet")
        self.preview.setMinimumSize(200, 120)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.losses = pg.PlotWidget()
        self.losses.setLabel("bottom", "iteration")
        self.losses.setLabel("left", "loss")
        self.losses.addLegend()
        row.addWidget(self.preview, 1)
        row.addWidget(self.losses, 1)
        self.layout_.addLayout(row, 1)
        self.add_runner("Train", resumable=True)
        self.layout_.addWidget(self.error)
        self.skip.toggled.connect(self._skip_toggled)
        for w in (self.config.currentTextChanged, self.iterations.valueChanged,
                  self.image_px.valueChanged):
            w.connect(lambda *_: self._show_command())

    def _settings(self) -> None:
        self.project.update("style", skip=self.skip.isChecked(), config=self.config.currentText(),
                            iterations=self.iterations.value(), image_px=self.image_px.value())

    def _show_command(self) -> None:
        st = self.project["style"]
        saved = dict(st)
        st.update(config=self.config.currentText(), iterations=self.iterations.value(),
                  image_px=self.image_px.value())
        _, command = runner.style_job(self.project)
        st.clear()
        st.update(saved)
        self.command.setPlainText(command)

    def _skip_toggled(self, on: bool) -> None:
        for w in (self.config, self.iterations, self.image_px, self.run_button,
                  self.resume_button):
            w.setEnabled(not on)
        self.completeChanged.emit()

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        st = self.project["style"]
        self.skip.setChecked(bool(st["skip"]))
        self.config.setCurrentText(st["config"])
        self.iterations.setValue(int(st["iterations"]))
        self.image_px.setValue(int(st["image_px"]))
        self._skip_toggled(self.skip.isChecked())
        self._show_command()
        self.refresh_live()

    def start(self, resume: bool = False) -> None:
        self._settings()
        if resume and not self.project.path("style", "checkpoint.json").exists():
            self.fail("There is no style checkpoint to resume yet: press Train.")
            return
        if not resume and self.project.path("style", "checkpoint.json").exists():
            kept = _set_aside(self.project.path("style"))  # a fresh run; hours of work kept
            self.status.setText(f"the previous style run was moved to {kept.name}")
        self.project.update("style", bundle="")
        self.project.mark_done("style", False)
        fn, command = runner.style_job(self.project, resume=resume)
        self.command.setPlainText(command)
        self.run_job(fn, "style training", self._trained)

    def _trained(self, bundle) -> None:
        self.project.update("style", bundle=str(bundle))
        self.status.setText(f"style bundle written: {Path(bundle).name}")
        self.refresh_live()

    def on_progress(self, done, total, message) -> None:
        self.refresh_live()

    def refresh_live(self) -> None:
        path = runner.latest_preview(self.project)
        if path is not None:
            pix = QPixmap(str(path))
            if not pix.isNull():
                self.preview.setPixmap(pix.scaled(320, 200, Qt.AspectRatioMode.KeepAspectRatio))
        history = runner.style_history(self.project)
        self.losses.clear()
        if history:
            its = [h.get("iteration", i) for i, h in enumerate(history)]
            keys = [k for k in history[-1] if k not in ("iteration", "seconds")][:5]
            for i, key in enumerate(keys):
                self.losses.plot(its, [h.get(key, np.nan) for h in history], name=key,
                                 pen=pg.intColor(i, len(keys)))

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and (self.skip.isChecked()
                                          or bool(self.project["style"]["bundle"]))

    def check_and_save(self):
        if not self.skip.isChecked() and not self.project["style"]["bundle"]:
            return self.fail("Train the style model (or resume it), or tick ‘Skip style "
                             "training’.")
        self.project.update("style", skip=self.skip.isChecked())
        return True


# ============================================================================ dataset
class DatasetPage(StepPage):
    step = "dataset"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Training data",
                         "Labelled simulations in your microscope's style, with robustness "
                         "augmentations.")
        form = QFormLayout()
        self.mode = QComboBox()
        self.mode.addItems(["random", "grid"])
        self.count = _spin(1, 5_000_000, 2000)
        self.step_A = _spin(0.005, 5, 0.1, 3, 0.01, " Å")
        self.patch_px = _spin(16, 2048, 128)
        self.test_count = _spin(1, 100_000, 200)
        self.vacancies = _spin(0, 0.49, 0.0, 2, 0.01)
        self.holes = _spin(0, 1, 0.0, 2, 0.05)
        self.contamination = _spin(0, 1, 0.0, 2, 0.05)
        self.psnr = QCheckBox("Gaussian noise, PSNR 7–30 dB (the paper's)")
        form.addRow("Labels", self.mode)
        form.addRow("Patches (random) / per grid point", self.count)
        form.addRow("Grid step (slip)", self.step_A)
        form.addRow("Patch = window size (px)", self.patch_px)
        form.addRow("Held-out test patches", self.test_count)
        form.addRow("Vacancies up to (fraction)", self.vacancies)
        form.addRow("Hole probability", self.holes)
        form.addRow("Contamination probability", self.contamination)
        form.addRow(self.psnr)
        self.layout_.addLayout(form)
        self.estimate = QLabel()
        self.estimate.setWordWrap(True)
        self.layout_.addWidget(self.estimate)
        self.add_runner("Generate")
        self.layout_.addWidget(self.error)
        self.layout_.addStretch(1)
        for box in (self.count, self.step_A, self.patch_px, self.test_count, self.vacancies,
                    self.holes, self.contamination):
            box.valueChanged.connect(lambda *_: self.update_estimate())
        self.mode.currentTextChanged.connect(lambda *_: self.update_estimate())
        self.psnr.toggled.connect(lambda *_: self.update_estimate())

    def _save(self) -> None:
        self.project.update(
            "dataset", mode=self.mode.currentText(), count=self.count.value(),
            step_A=self.step_A.value(), patch_px=self.patch_px.value(),
            test_count=self.test_count.value(), vacancies=self.vacancies.value(),
            holes=self.holes.value(), contamination=self.contamination.value(),
            psnr=[7.0, 30.0] if self.psnr.isChecked() else [])

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        d = self.project["dataset"]
        for box, key in ((self.count, "count"), (self.step_A, "step_A"),
                         (self.patch_px, "patch_px"), (self.test_count, "test_count"),
                         (self.vacancies, "vacancies"), (self.holes, "holes"),
                         (self.contamination, "contamination")):
            box.blockSignals(True)
            box.setValue(d[key])
            box.blockSignals(False)
        self.mode.setCurrentText(d["mode"])
        self.psnr.setChecked(bool(d["psnr"]))
        self.update_estimate()

    def update_estimate(self) -> None:
        try:
            self._save()
            n, seconds, nbytes = runner.dataset_estimate(self.project)
            _, command = runner.dataset_job(self.project)
        except (ValueError, OSError) as exc:
            from stackview.errors import one_sentence

            self.estimate.setText("")
            self.fail(one_sentence(exc))
            return
        self.clear_error()
        self.estimate.setText(f"{runner.window_text(self.project)} About {n} patches, "
                              f"≈ {nbytes / 1e6:.1f} MB on disk and ≈ {_duration(seconds)} on "
                              "one core (rough estimate).")
        self.command.setPlainText(command)

    def start(self, resume: bool = False) -> None:
        self._save()
        self.project.mark_done("dataset", False)
        fn, _ = runner.dataset_job(self.project)
        self.run_job(fn, "generating data", self._made)

    def _made(self, paths) -> None:
        from stackview.datasets.store import open_dataset

        ds = open_dataset(paths[0])
        self.project.update("dataset", train=str(paths[0]), test=str(paths[1]),
                            seconds=float(ds.attrs.get("generation_seconds", 0)))
        self.status.setText(f"{len(ds)} training patches written")
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        d = self.project["dataset"]
        return super().isComplete() and bool(d["train"]) and Path(d["train"]).exists()

    def check_and_save(self):
        if not self.isComplete():
            return self.fail("Generate the training data first (press Generate).")
        return True


def _set_aside(folder: Path) -> Path:
    """Rename ``folder`` to ``folder.previous-N`` (a new run never deletes an old one)."""
    n = 1
    while (target := folder.with_name(f"{folder.name}.previous-{n}")).exists():
        n += 1
    folder.rename(target)
    return target


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ============================================================================ regressor
class RegressorPage(StepPage):
    step = "regressor"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Regressor training",
                         "The network that reads slip or twist from a patch.")
        import torch

        form = QFormLayout()
        self.name = QLineEdit()
        self.backbone = QComboBox()
        self.backbone.addItems(["resnet18", "resnet50", "tiny"])
        self.steps = _spin(1, 10_000_000, 3000)
        self.batch = _spin(1, 4096, 32)
        self.lr = _spin(1e-6, 1, 1e-3, 6, 1e-4)
        self.start_from = QComboBox()
        self.start_from.setToolTip(
            "Start from a trained model of the same kind (e.g. the ReS2 slip model for ReSe2): "
            "it learns a related material in a fraction of the steps; use a lower learning "
            "rate (e.g. 3e-4).")
        self.backbone.currentTextChanged.connect(self._fill_start_models)
        form.addRow("Model name", self.name)
        form.addRow("Backbone", self.backbone)
        form.addRow("Start from", self.start_from)
        form.addRow("Steps", self.steps)
        form.addRow("Batch size", self.batch)
        form.addRow("Learning rate", self.lr)
        self.layout_.addLayout(form)
        device = (f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
                  else "CPU (no GPU found)")
        self.layout_.addWidget(QLabel(f"Trains on: {device}"))
        self.curve_plot = pg.PlotWidget()
        self.curve_plot.setLabel("bottom", "step")
        self.curve_plot.setLabel("left", "loss")
        self.curve = self.curve_plot.plot(pen="y")
        self.layout_.addWidget(self.curve_plot, 1)
        self.add_runner("Train", resumable=True)
        self.layout_.addWidget(self.error)
        self.points: list[tuple[int, float]] = []

    def _save(self) -> bool:
        from stackview.models.registry import user_models_dir

        name = self.name.text().strip()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            return self.fail("Give the model a name of letters, digits, - and _.")
        installed = user_models_dir() / name
        if (Path(str(installed) + ".json").exists()
                and self.project["finish"]["installed"] != str(installed)):
            return self.fail(f"Your library already has a model called {name}; choose "
                             "another name.")
        self.project.update("finish", name=name)
        self.project.update("regressor", backbone=self.backbone.currentText(),
                            steps=self.steps.value(), batch_size=self.batch.value(),
                            lr=self.lr.value(), init_from=self.start_from.currentData() or "")
        return True

    def _fill_start_models(self, backbone: str) -> None:
        keep = self.start_from.currentData() or self.project["regressor"].get("init_from", "")
        self.start_from.clear()
        self.start_from.addItem("nothing (train from scratch)", "")
        for name in runner.start_models(self.project, backbone):
            self.start_from.addItem(name, name)
        index = self.start_from.findData(keep)
        self.start_from.setCurrentIndex(max(0, index))

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        r = self.project["regressor"]
        self.name.setText(self.project["finish"]["name"] or runner.default_model_name(
            self.project))
        self.backbone.setCurrentText(r["backbone"])
        self._fill_start_models(r["backbone"])
        self.steps.setValue(int(r["steps"]))
        self.batch.setValue(int(r["batch_size"]))
        self.lr.setValue(float(r["lr"]))
        self.points = [(h["step"], h["loss"]) for h in r["history"] if "loss" in h]
        self._draw()
        self.command.setPlainText(runner.regressor_job(self.project)[1])

    def start(self, resume: bool = False) -> None:
        if not self._save():
            return
        ckpt = self.project.path("model", "checkpoints")
        if resume and not any(ckpt.glob("*")):
            self.fail("There is no checkpoint to resume yet: press Train.")
            return
        if not resume and ckpt.exists():
            _set_aside(ckpt)
        self.project.update("regressor", bundle="")
        self.project.mark_done("regressor", False)
        if not resume:
            self.points = []
        fn, command = runner.regressor_job(self.project, resume=resume)
        self.command.setPlainText(command)
        self.run_job(fn, "training the regressor", self._trained)

    def on_progress(self, done, total, message) -> None:
        if message.startswith("loss "):
            try:
                self.points.append((done, float(message.split()[1])))
            except ValueError:
                return
            self._draw()

    def _draw(self) -> None:
        if self.points:
            x, y = zip(*self.points, strict=True)
            self.curve.setData(list(x), list(y))
        else:
            self.curve.setData([], [])

    def _trained(self, result) -> None:
        history = [{k: v for k, v in h.items() if isinstance(v, (int, float))}
                   for h in result["history"]]
        self.project.update("regressor", bundle=result["bundle"], history=history,
                            device=result["device"])
        if history and "loss" in history[0]:
            self.points = [(h["step"], h["loss"]) for h in history if "step" in h]
            self._draw()
        self.status.setText(f"model written: {Path(result['bundle']).name} "
                            f"({result['device']})")

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and bool(self.project["regressor"]["bundle"])

    def check_and_save(self):
        if not self.project["regressor"]["bundle"]:
            return self.fail("Train the regressor first (press Train).")
        return True


# ============================================================================ evaluation
class EvaluationPage(StepPage):
    step = "evaluation"

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Evaluation",
                         "Accuracy on held-out simulations the model never saw.")
        self.hist = pg.PlotWidget()
        self.hist.setLabel("bottom", "error")
        self.hist.setLabel("left", "patches")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Quantity", "Value"])
        self.table.horizontalHeader().setStretchLastSection(True)
        row = QHBoxLayout()
        row.addWidget(self.hist, 1)
        row.addWidget(self.table, 1)
        self.layout_.addLayout(row, 1)
        self.add_runner("Evaluate")
        self.layout_.addWidget(self.error)
        self.errors: list[float] = []

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        self.command.setPlainText(runner.evaluation_job(self.project)[1])
        ev = self.project["evaluation"]
        self.errors = list(ev.get("errors", []))
        self.show_metrics(ev["metrics"])

    def start(self, resume: bool = False) -> None:
        self.project.mark_done("evaluation", False)
        fn, command = runner.evaluation_job(self.project)
        self.command.setPlainText(command)
        self.run_job(fn, "evaluating", self._evaluated)

    def _evaluated(self, result) -> None:
        metrics = {k: v for k, v in result["metrics"].items() if k != "dataset"}
        self.errors = result["errors"]
        self.project.update("evaluation", metrics=metrics, report=result["report"],
                            errors=self.errors)
        self.show_metrics(metrics)

    def show_metrics(self, metrics: dict) -> None:
        rows = runner.accuracy_rows(metrics) if metrics else []
        self.table.setRowCount(len(rows))
        for r, (k, v) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(k))
            self.table.setItem(r, 1, QTableWidgetItem(v))
        self.hist.clear()
        if self.errors:
            unit = "Å" if "mean_A" in metrics else "°"
            counts, edges = np.histogram(self.errors, bins=min(30, max(5, len(self.errors) // 4)))
            self.hist.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                              brush=pg.mkBrush(60, 130, 200)))
            self.hist.setLabel("bottom", "ΔD" if unit == "Å" else "Δθ", units=unit)

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return super().isComplete() and bool(self.project["evaluation"]["metrics"])

    def check_and_save(self):
        if not self.project["evaluation"]["metrics"]:
            return self.fail("Evaluate the model first (press Evaluate).")
        return True


# ============================================================================ finish
class FinishPage(StepPage):
    step = "finish"
    registered = Signal(str)

    def __init__(self, project: Project) -> None:
        super().__init__(project, "Finish",
                         "Register the model in your library; it is selectable in the main "
                         "window at once.")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.register_button = QPushButton("Register in my model library")
        self.register_button.clicked.connect(self.register)
        self.layout_.addWidget(self.summary)
        self.layout_.addWidget(self.register_button)
        self.layout_.addWidget(self.error)
        self.layout_.addStretch(1)
        self.setFinalPage(True)

    def initializePage(self) -> None:  # noqa: N802 (Qt)
        m = self.project["material"]
        metrics = self.project["evaluation"]["metrics"]
        acc = dict(runner.accuracy_rows(metrics)) if metrics else {}
        line = acc.get("ΔD mean") or acc.get("Δθ mean") or "not evaluated"
        installed = self.project["finish"]["installed"]
        self.summary.setText(
            f"Model {runner.bundle_stem(self.project).name}: {m['name']} {m['task']}, "
            f"{m['layers']} layers; mean error on held-out data {line}."
            + (f"\nRegistered: {installed}" if installed else ""))

    def register(self) -> None:
        try:
            target = runner.install(self.project)
        except (ValueError, OSError) as exc:
            from stackview.errors import one_sentence

            self.fail(one_sentence(exc))
            return
        self.clear_error()
        self.project.update("finish", installed=str(target))
        self.project.mark_done("finish")
        self.initializePage()
        self.registered.emit(str(target))
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802 (Qt)
        return bool(self.project["finish"]["installed"])

    def check_and_save(self):
        if not self.project["finish"]["installed"]:
            return self.fail("Press ‘Register in my model library’ first.")
        return True

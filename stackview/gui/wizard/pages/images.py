"""The Images page: experimental images (dropped files) and their pixel sizes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
)

from stackview.errors import one_sentence
from stackview.gui.wizard.pages.base import StepPage
from stackview.gui.wizard.project import Project


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
        from stackview.analysis.calibration import calibrate_from_lattice
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

"""The image list for batch work and the batch statistics table (the CLI's stats.csv)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


class ImageList(QWidget):
    """Open images; selecting one shows it. Signal ``imageSelected(str)``."""

    imageSelected = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)

    def add(self, path: str | Path, select: bool = False) -> None:
        path = str(path)
        for i in range(self.list.count()):
            if self.list.item(i).data(256) == path:
                if select:
                    self.list.setCurrentRow(i)
                return
        item = QListWidgetItem(Path(path).name)
        item.setData(256, path)  # Qt.UserRole
        item.setToolTip(path)
        self.list.addItem(item)
        if select:
            self.list.setCurrentItem(item)

    def paths(self) -> list[Path]:
        return [Path(self.list.item(i).data(256)) for i in range(self.list.count())]

    def _changed(self, item, _previous) -> None:
        if item is not None:
            self.imageSelected.emit(item.data(256))


class BatchPanel(QWidget):
    """Run the analysis over every listed image; a table of medians/IQRs per image."""

    runRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.run_button = QPushButton("Analyse all listed images")
        self.run_button.clicked.connect(self.runRequested)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.info, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.table)

    def show_rows(self, rows: list[dict], failures) -> None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(columns)
        for i, r in enumerate(rows):
            for j, c in enumerate(columns):
                self.table.setItem(i, j, QTableWidgetItem(str(r.get(c, ""))))
        self.table.resizeColumnsToContents()
        text = f"{len(rows)} images analysed"
        if failures:
            text += "; skipped: " + "; ".join(f"{n}: {m}" for n, m in failures)
        self.info.setText(text)

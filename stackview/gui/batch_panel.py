"""The image list for batch work and the batch statistics table (the CLI's stats.csv).

Unreliable images keep their row, shown in red with the reason, and are left out of the
aggregate line, exactly as ``stackview analyze FOLDER`` does (one helper,
:mod:`stackview.analysis.batch`, decides both)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QBrush, QColor, QFont
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

from stackview.analysis.batch import batch_statistics, is_reliable

#: an unreliable image's row: red, bold, impossible to read as a normal result
UNRELIABLE_BACKGROUND = QColor(255, 205, 210)
UNRELIABLE_TEXT = QColor(183, 28, 28)


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

    def show_images(self, paths, current: str | None = None) -> None:
        """Show exactly ``paths`` (a session's images), ``current`` selected, without
        announcing a selection."""
        self.list.blockSignals(True)
        try:
            self.list.clear()
            for path in paths:
                self.add(path, select=str(path) == current)
        finally:
            self.list.blockSignals(False)

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
        self.statistics = None  # stackview.analysis.batch.BatchStatistics of the rows shown
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
        if "reliable_reason" in columns:  # a long sentence: last, so the medians stay in view
            columns.remove("reliable_reason")
            columns.append("reliable_reason")
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(columns)
        bold = QFont()
        bold.setBold(True)
        for i, r in enumerate(rows):
            reliable = is_reliable(r)
            for j, c in enumerate(columns):
                item = QTableWidgetItem(str(r.get(c, "")))
                if not reliable:
                    item.setBackground(QBrush(UNRELIABLE_BACKGROUND))
                    item.setForeground(QBrush(UNRELIABLE_TEXT))
                    item.setFont(bold)
                    item.setToolTip("Unreliable, left out of the aggregate: "
                                    + str(r.get("reliable_reason") or ""))
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        stats = batch_statistics(rows)
        self.statistics = stats
        text = "\n".join([stats.headline(), *stats.aggregate_lines()])
        if failures:
            text += "\nskipped: " + "; ".join(f"{n}: {m}" for n, m in failures)
        self.info.setText(text)

"""Error reporting for the window: one sentence, with the details behind a button."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def show_error(parent: QWidget | None, sentence: str, details: str = "",
               title: str = "stackview") -> QMessageBox:
    """Show a non-blocking warning box (``open()``, not ``exec()``, so jobs and tests go on).

    The box is returned and kept as ``parent.last_error`` so callers and tests can inspect it.
    """
    box = QMessageBox(QMessageBox.Icon.Warning, title, sentence, QMessageBox.StandardButton.Ok,
                      parent)
    if details:
        box.setDetailedText(details)
    box.setObjectName("errorBox")
    if parent is not None:
        parent.last_error = box
    box.open()
    return box

"""Application start-up: QApplication, the main window, the files from the command line."""

from __future__ import annotations

import sys
import time


def create_app():
    """The QApplication (created once), named so QSettings find their file."""
    from PySide6.QtWidgets import QApplication

    from stackview.gui import settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(settings.ORGANIZATION)
    app.setApplicationName(settings.APPLICATION)
    return app


def main(files: list[str] | None = None) -> int:
    """Open the window with ``files`` and run the event loop; returns the exit code."""
    from stackview.engine.qt_compat import binding_problem

    start = time.perf_counter()
    problem = binding_problem()
    if problem:  # refuse cleanly rather than abort mid-session and lose the user's work
        print(f"stackview: error: {problem}.", file=sys.stderr)
        return 2
    app = create_app()
    from stackview.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if files:
        window.open_paths(files)
    window.statusBar().showMessage(f"Ready ({time.perf_counter() - start:.1f} s to start).", 5000)
    return app.exec()

"""Application start-up: QApplication, the main window, the files from the command line."""

from __future__ import annotations

import os
import sys
import time

#: for start-up measurements and smoke tests: quit this many ms after the window is shown
EXIT_AFTER_ENV = "STACKVIEW_GUI_EXIT_AFTER_MS"


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
    seconds = time.perf_counter() - start
    window.statusBar().showMessage(f"Ready ({seconds:.1f} s to start).", 5000)
    exit_after = os.environ.get(EXIT_AFTER_ENV)
    if exit_after:
        from PySide6.QtCore import QTimer

        print(f"stackview: window shown {seconds:.2f} s after the gui command started",
              file=sys.stderr)
        QTimer.singleShot(int(exit_after), app.quit)
    return app.exec()

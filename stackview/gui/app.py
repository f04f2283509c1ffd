"""Application start-up: QApplication, the main window, the files from the command line."""

from __future__ import annotations

import os
import sys
import time

#: for start-up measurements and smoke tests: quit this many ms after the window is shown
EXIT_AFTER_ENV = "STACKVIEW_GUI_EXIT_AFTER_MS"
#: smoke test of a build (packaging/build_and_smoke.sh): set to a folder; the window opens the
#: bundled sample from its welcome panel, analyses it, exports into the folder and exits 0, or
#: exits 1 with one sentence on stderr
SMOKE_TEST_ENV = "STACKVIEW_GUI_SMOKE_TEST"
SMOKE_TIMEOUT_S = 900


def create_app():
    """The QApplication (created once), named so QSettings find their file."""
    from PySide6.QtWidgets import QApplication

    from stackview.gui import settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(settings.ORGANIZATION)
    app.setApplicationName(settings.APPLICATION)
    app.setDesktopFileName("stackview")  # ties the window to packaging/stackview.desktop
    from PySide6.QtGui import QIcon

    from stackview.paths import RESOURCES_DIR

    icon = RESOURCES_DIR / "icons" / "stackview.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    return app


def main(files: list[str] | None = None, session: str | None = None) -> int:
    """Open the window with ``files`` (and a saved ``session`` folder) and run the event loop;
    returns the exit code."""
    from stackview.engine.qt_compat import binding_problem
    from stackview.gui.platform_check import xcb_problem

    start = time.perf_counter()
    if session is not None:
        from stackview.session.store import read_session_file

        try:
            read_session_file(session)  # a wrong folder is said before any window opens
        except ValueError as exc:
            from stackview.errors import one_sentence

            print(f"stackview: error: {one_sentence(exc)}", file=sys.stderr)
            return 2
    problem = xcb_problem()  # before QApplication: Qt's own message names no library
    if problem:
        print(f"stackview: error: {problem}.", file=sys.stderr)
        return 2
    problem = binding_problem()
    if problem:  # refuse cleanly rather than abort mid-session and lose the user's work
        print(f"stackview: error: {problem}.", file=sys.stderr)
        return 2
    app = create_app()
    from stackview.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if session is not None:
        window.open_session(session)
    if files:
        window.open_paths(files)
    seconds = time.perf_counter() - start
    window.statusBar().showMessage(f"Ready ({seconds:.1f} s to start).", 5000)
    smoke_out = os.environ.get(SMOKE_TEST_ENV)
    if smoke_out:
        smoke_test(window, smoke_out)
    exit_after = os.environ.get(EXIT_AFTER_ENV)
    if exit_after:
        from PySide6.QtCore import QTimer

        print(f"stackview: window shown {seconds:.2f} s after the gui command started",
              file=sys.stderr)
        # exit(), not quit(): QGuiApplication.quit() with a window shown leaves Qt unable to
        # deliver signals from worker threads to later windows in the same process (seen in
        # the test suite: every job after it never reported back)
        QTimer.singleShot(int(exit_after), lambda: app.exit(0))
    code = app.exec()
    # app.quit() skips closeEvent; a window destroyed with a job still running leaves a dead
    # worker behind (later jobs in the process never report back), so close it properly
    window.close()
    return code


def smoke_test(window, out_dir: str, exit=None) -> None:
    """Drive ``window`` as a first-time user would (welcome panel → sample → Run → Export) on
    the event loop, then call ``exit(code)`` (default: quit the application) with 0, or with 1
    and one sentence on stderr on the first failure."""
    from pathlib import Path

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    exit = exit or QApplication.instance().exit
    start = time.monotonic()
    state = {"step": "open"}
    sample = str(window.welcome.sample)

    def finish(code: int, sentence: str) -> None:
        timer.stop()
        print(f"stackview: smoke test {'passed' if code == 0 else 'failed'}: {sentence}",
              file=sys.stderr)
        exit(code)

    def tick() -> None:
        if window.last_error is not None:
            return finish(1, window.last_error.text())
        if time.monotonic() - start > SMOKE_TIMEOUT_S:
            return finish(1, f"no result after {SMOKE_TIMEOUT_S} s ({state['step']}).")
        if window.busy():
            return
        if state["step"] == "open":
            if not window.welcome.isVisible():
                return finish(1, "the welcome panel is not shown in the empty window.")
            window.welcome.sample_button.click()
            state["step"] = "opening"
        elif state["step"] == "opening" and sample in window.images:
            if window.welcome.isVisible():
                return finish(1, "the welcome panel stayed over the opened image.")
            if window.run_analysis() is None:
                return finish(1, "the window did not start the analysis.")
            state["step"] = "analysing"
        elif state["step"] == "analysing" and sample in window.results:
            window.export_results(out_dir)
            state["step"] = "exporting"
        elif state["step"] == "exporting":
            folder = Path(out_dir) / Path(sample).stem
            missing = [n for n in ("map.csv", "figure.png", "summary.json")
                       if not (folder / n).is_file()]
            if missing:
                return finish(1, f"the export lacks {', '.join(missing)} in {folder}.")
            s = window.results[sample].summary()
            values = ", ".join(f"{k[:-7]} {s[k]:.3f}" for k in s
                               if k.endswith("_median") and isinstance(s[k], float))
            finish(0, f"{s['n_patches']} windows ({values}) in {time.monotonic() - start:.1f} s, "
                      f"written to {folder}.")

    timer = QTimer(window)
    timer.timeout.connect(tick)
    timer.start(200)

"""Fixtures the window's tests share; a GUI test module imports them after its Qt check:

    from qt_fixtures import isolated_settings, window  # noqa: F401
"""

import pytest
from PySide6.QtCore import QSettings


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path):
    """Preferences in a temporary folder: every test starts as a new user."""
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))


@pytest.fixture
def window(qtbot):
    """The main window, shown; its jobs cancelled and joined afterwards."""
    from stackview.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    for job in list(w.jobs):
        job.cancel()
        job.wait(5000)

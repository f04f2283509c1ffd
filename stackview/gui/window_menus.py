"""The main window's menus: File (images, models, sessions, exports), Edit (undo, redo),
View, Tools and Help."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence


def _add(menu, window, text, slot, key=None) -> QAction:
    action = QAction(text, window)
    if key is not None:
        action.setShortcut(key)
    action.triggered.connect(lambda *_: slot())
    menu.addAction(action)
    return action


def build_menus(window) -> None:
    """Fill ``window``'s menu bar; the actions tests and other code use become attributes
    (``undo_action``, ``redo_action``, ``save_session_action``, ``wizard_action``...)."""
    keys = QKeySequence.StandardKey
    file_menu = window.menuBar().addMenu("&File")
    _add(file_menu, window, "&Open…", window.open_dialog, keys.Open)
    _add(file_menu, window, "Open &folder…", window.open_folder_dialog)
    _add(file_menu, window, "Open &model bundle…", window.open_model_dialog)
    window.recent_menu = file_menu.addMenu("Open &recent")
    file_menu.addSeparator()
    window.open_session_action = _add(file_menu, window, "Open &session…",
                                      window.open_session_dialog)
    window.save_session_action = _add(file_menu, window, "&Save session",
                                      window.save_session, keys.Save)
    window.save_session_as_action = _add(file_menu, window, "Save session &as…",
                                         window.save_session_dialog, keys.SaveAs)
    file_menu.addSeparator()
    for text, slot in (
        ("&Export results (maps, figure PNG, summary)…", lambda: window.export_dialog("png")),
        ("Export results with an SVG figure…", lambda: window.export_dialog("svg")),
        ("Export &atomic model of the picked window…", window.export_atoms_dialog),
        ("Export &batch (all images + stats.csv)…", window.export_batch_dialog),
    ):
        _add(file_menu, window, text, slot)
    file_menu.addSeparator()
    _add(file_menu, window, "&Quit", window.close, keys.Quit)

    edit_menu = window.menuBar().addMenu("&Edit")
    window.undo_action = _add(edit_menu, window, "&Undo", window.undo, keys.Undo)
    window.redo_action = _add(edit_menu, window, "&Redo", window.redo, keys.Redo)

    view_menu = window.menuBar().addMenu("&View")
    for dock in window.docks.values():
        view_menu.addAction(dock.toggleViewAction())
    tools_menu = window.menuBar().addMenu("&Tools")
    window.wizard_action = tools_menu.addAction("Train a model for a new material…")
    window.wizard_action.triggered.connect(lambda: window.open_training_wizard())
    help_menu = window.menuBar().addMenu("&Help")
    window.about_action = help_menu.addAction("&About stackview")
    window.about_action.triggered.connect(lambda: window.show_about())

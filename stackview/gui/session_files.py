"""Saving and opening the window's session (File menu, ``stackview gui --session DIR``) and
undoing its edits (Edit menu); the folder format is :mod:`stackview.session.store`'s."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from stackview.gui import tasks
from stackview.gui.errors import show_error
from stackview.session.model import Session
from stackview.session.store import open_session, save_session


class WindowSession:
    """Mixed into :class:`~stackview.gui.main_window.MainWindow` (needs ``session``)."""

    session_folder: Path | None = None
    #: what the last opened session could not restore (one sentence each)
    session_problems: list[str] = []

    # --- undo ----------------------------------------------------------------------------
    def undo(self) -> str | None:
        label = self.session.undo()
        if label:
            self.status_text.setText(f"Undone: {label}.")
        return label

    def redo(self) -> str | None:
        label = self.session.redo()
        if label:
            self.status_text.setText(f"Redone: {label}.")
        return label

    def _history_changed(self) -> None:
        h = self.session.history
        self.undo_action.setEnabled(h.can_undo)
        self.redo_action.setEnabled(h.can_redo)
        self.undo_action.setText(f"&Undo {h.undo_label()}" if h.can_undo else "&Undo")
        self.redo_action.setText(f"&Redo {h.redo_label()}" if h.can_redo else "&Redo")

    # --- save ----------------------------------------------------------------------------
    def save_session(self, folder=None):
        """Write the session into ``folder`` (default: where it was saved or opened)."""
        folder = folder or self.session_folder
        if folder is None:
            return self.save_session_dialog()
        snapshot = Session(**self.session.state())  # immutable values: safe in the worker
        extra = {"saved_by": "stackview gui"}

        def saved(path, folder=Path(folder)):
            self.session_folder = folder
            self.status_text.setText(f"Session saved to {path}")

        return self.start_job(lambda progress, cancel: save_session(
            snapshot, folder, progress, cancel, extra), "Saving the session", saved)

    def save_session_dialog(self):
        folder = QFileDialog.getExistingDirectory(self, "Save the session into a folder")
        return self.save_session(folder) if folder else None

    # --- open ----------------------------------------------------------------------------
    def open_session(self, folder):
        """Read a session folder in the background and show it (images, settings, results,
        the inspected window); what could not be restored is said in one message."""
        def loader(path_or_name):
            return tasks.load_model(str(path_or_name), None)

        return self.start_job(lambda progress, cancel: open_session(
            folder, progress, cancel, load_bundle=loader),
            f"Opening the session {Path(folder).name}", self.adopt_session)

    def open_session_dialog(self):
        folder = QFileDialog.getExistingDirectory(self, "Open a saved session (its folder)")
        return self.open_session(folder) if folder else None

    def adopt_session(self, opened) -> None:
        """Show an :class:`~stackview.session.store.OpenedSession` in this window."""
        s = opened.session
        self.images = {path: tasks.OpenedImage(loaded, None, "")
                       for path, loaded in opened.images.items()}
        self.landscapes, self.reflections, self.batch, self.inspection = {}, {}, None, None
        inspected = s.inspected
        self.session.load(s)
        self.session_folder = opened.folder
        self.session_problems = list(opened.problems)
        self.image_list.show_images([ref.path for ref in s.images], s.current)
        if s.current is not None:
            self.show_image(s.current)
            if inspected is not None and s.current in self.results:
                self.pick_window(*inspected)
        self.status_text.setText(f"Session {opened.folder.name} opened.")
        if len(opened.problems) == 1:
            show_error(self, opened.problems[0])
        elif opened.problems:
            show_error(self, f"{len(opened.problems)} images of the session could not be "
                             "restored; the details say which and why.",
                       "\n".join(opened.problems))

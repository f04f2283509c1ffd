"""Undo and redo of a user's edits to a :class:`~stackview.session.model.Session` (no Qt).

An edit is recorded as the values it replaced and the values it set, field by field (the
session's fields hold immutable values, so a snapshot costs nothing); undo puts the old values
back, redo the new ones. A new edit after an undo drops what could have been redone, as every
editor does.
"""

from __future__ import annotations

from dataclasses import dataclass

from psygnal import Signal


@dataclass(frozen=True)
class Edit:
    """One undoable step: ``before``/``after`` map field names to values."""

    label: str
    before: dict
    after: dict


class History:
    """The undo/redo stacks of one session.

    Signals
    -------
    changed()
        After every record, undo, redo or clear (menus update their text and state).
    """

    changed = Signal()

    def __init__(self, limit: int = 500) -> None:
        self.limit = limit
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []

    def record(self, edit: Edit) -> None:
        self._undo.append(edit)
        del self._undo[:-self.limit]
        self._redo.clear()
        self.changed.emit()

    def pop_undo(self) -> Edit | None:
        if not self._undo:
            return None
        edit = self._undo.pop()
        self._redo.append(edit)
        self.changed.emit()
        return edit

    def pop_redo(self) -> Edit | None:
        if not self._redo:
            return None
        edit = self._redo.pop()
        self._undo.append(edit)
        self.changed.emit()
        return edit

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self.changed.emit()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo_label(self) -> str:
        return self._undo[-1].label if self._undo else ""

    def redo_label(self) -> str:
        return self._redo[-1].label if self._redo else ""

    def __len__(self) -> int:
        return len(self._undo)

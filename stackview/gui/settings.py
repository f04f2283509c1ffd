"""Persistent preferences (QSettings): recent files, last model, SPM settings, layout."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANIZATION = "stackview"
APPLICATION = "stackview"
MAX_RECENT = 10


def settings() -> QSettings:
    return QSettings(ORGANIZATION, APPLICATION)


def recent_files() -> list[str]:
    value = settings().value("recent_files", [])
    if isinstance(value, str):  # QSettings returns a bare string for one-element lists
        value = [value]
    return [str(v) for v in value or []]


def add_recent(path: str) -> list[str]:
    items = [path] + [p for p in recent_files() if p != path]
    items = items[:MAX_RECENT]
    settings().setValue("recent_files", items)
    return items


def get(key: str, default=None, type_=None):
    s = settings()
    if type_ is None:
        return s.value(key, default)
    try:
        return s.value(key, default, type=type_)
    except (TypeError, ValueError):  # a stale or hand-edited value: fall back
        return default


def put(key: str, value) -> None:
    settings().setValue(key, value)

"""The installed Qt binding, checked before the window opens.

PySide6 6.12.0 corrupts Python's reference counts (``SignalInstance.emit`` drops a reference to
``True``, every Python override of a Qt virtual method one to ``None``): a window aborts within a
minute. The project's dependencies exclude it and :func:`binding_problem` refuses to start the
window on it with one sentence, so no patch of the binding is applied.
"""

from __future__ import annotations

#: bindings known to corrupt Python's reference counts: PySide6 6.12.0 drops a reference to
#: ``None`` on every call of a Python override of a Qt virtual method (``paintEvent``,
#: pyqtgraph's ``paint``...), so any window aborts within a minute with "deallocating None"
BROKEN_BINDINGS = {(6, 12, 0): "drops references to None in every Python override of a Qt "
                               "virtual method"}


def binding_problem() -> str | None:
    """One sentence when the installed Qt binding cannot run the window, else None."""
    import PySide6

    version = tuple(PySide6.__version_info__[:3])
    why = BROKEN_BINDINGS.get(version)
    if why is None:
        return None
    text = ".".join(map(str, version))
    return (f"PySide6 {text} {why} and crashes the window; install another version, e.g. "
            f"pip install 'PySide6-Essentials!={text}' 'PySide6!={text}'")

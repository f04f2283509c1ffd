"""Work-arounds for bugs of the installed Qt binding, applied once on import of the Qt side.

PySide6 6.12.0: ``SignalInstance.emit`` returns ``True`` without taking a reference to it, so
every ``emit()`` called from Python lowers ``True``'s reference count by one; after a few
hundred emits (pyqtgraph emits on every mouse move) Python aborts with "deallocating True or
False". :func:`apply` probes for that leak and, only where it is present, wraps ``emit`` to
add the missing reference. A fixed binding is detected by the same probe and left alone.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal, SignalInstance

_applied = False


class _Probe(QObject):
    ping = Signal()


def emit_leaks_true() -> bool:
    """Whether ``emit()`` drops a reference to its return value (the 6.12.0 bug)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(4):
        probe.ping.emit()
    leaked = sys.getrefcount(True) < before
    if leaked:  # give back what the probe itself took
        for _ in range(before - sys.getrefcount(True)):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
    return leaked


def apply() -> bool:
    """Patch ``SignalInstance.emit`` if the binding needs it; returns whether it was patched."""
    global _applied
    if _applied:
        return True
    if not emit_leaks_true():
        return False
    original = SignalInstance.emit
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None

    def emit(self, *args):
        result = original(self, *args)
        if result is True or result is False:
            incref(result)  # the reference the binding forgot to take
        return result

    SignalInstance.emit = emit
    _applied = True
    return True


#: bindings known to corrupt Python's reference counts beyond what :func:`apply` can repair:
#: PySide6 6.12.0 also drops a reference to ``None`` on every call of a Python override of a
#: Qt virtual method (``paintEvent``, pyqtgraph's ``paint``...), so any window aborts within
#: a minute with "deallocating None".
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

"""The desktop application: a PySide6 + pyqtgraph main window on the background engine.

Widgets only: what the user works on is a :class:`stackview.session.Session` (Qt-free) the
widgets are views of, every number comes from the science library (``stackview.io``,
``stackview.analysis``, ``stackview.inference``), run through
:func:`stackview.engine.qt.start_job` so the window never blocks. Heavy modules (torch, abTEM,
matplotlib) are imported inside the jobs, never at start-up. Only this package and
``stackview.engine.qt*`` import Qt.
"""

"""The session: what a user works on, Qt-free and evented (see :mod:`.model`), saved to and
opened from a folder (:mod:`.store`), with undo and redo of the user's edits (:mod:`.history`).

The window's widgets are views of a :class:`Session`; scripts and tests use it without Qt::

    from stackview.session import Session, open_session, save_session

    session = Session()
    session.set_settings(stride_nm=0.25)
    session.undo()
"""

from stackview.session.history import Edit, History
from stackview.session.model import (
    AnalysisSettings,
    ImageCalibration,
    ImageRef,
    Session,
    Settings,
)
from stackview.session.store import OpenedSession, image_ref, open_session, save_session

__all__ = ["AnalysisSettings", "Edit", "History", "ImageCalibration", "ImageRef",
           "OpenedSession", "Session", "Settings", "image_ref", "open_session", "save_session"]

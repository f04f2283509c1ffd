"""What a user works on, as one evented model (psygnal, as napari's; no Qt here).

A :class:`Session` holds the open images (references: path and checksum), each image's
calibration and ROI, the analysis settings (material, model choice, window, stride...), the
results, the image shown and the inspected window. Its fields hold immutable values (frozen
dataclasses, tuples; the per-image dictionaries are replaced, never changed in place), so every
change is an assignment, and psygnal emits it: ``session.events.settings.connect(...)``. The
window's widgets are views of it; tests and scripts drive it without Qt.

User edits go through :meth:`Session.edit` (and the helpers built on it), which records them in
the session's :class:`~stackview.session.history.History` for undo and redo; what the program
computes (results, the calibration an analysis measured) is assigned without a record.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field, fields, replace

from psygnal import evented

from stackview.session.history import Edit, History

#: the pixel size a view uses for an image without a calibration (until the user gives one)
DEFAULT_PIXEL_SIZE_NM = 0.01


@dataclass(frozen=True)
class AnalysisSettings:
    """What one analysis asks for; mirrors ``stackview analyze``'s options."""

    model: str | None
    material: str | None
    pixel_size_nm: float | None = None  # None: the file's, else the FFT lattice (as the CLI)
    window_nm: float | None = None
    stride_nm: float = 0.5
    refine: bool = False
    fine_stride_nm: float = 0.1
    roi_nm: tuple[float, float, float, float] | None = None
    n_views: int = 1
    undistort: bool = True  # undo the scan distortion measured from the lattice
    fit: bool = False  # the physics fit of every window (analyze --fit, docs/fit.md)
    mode: str = "auto"  # window / dense / auto (analyze --mode)


@dataclass(frozen=True)
class Settings:
    """The analysis panel's settings (the user's; undoable)."""

    material: str | None = "ReS2"
    model: str | None = None  # a bundle path, or None: the material's default for the field
    window_nm: float = 2.0
    stride_nm: float = 0.5
    refine: bool = False
    fine_stride_nm: float = 0.1
    n_views: int = 1
    undistort: bool = True
    fit: bool = False
    use_roi: bool = False
    mode: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ImageRef:
    """An image of the session: where it is and what it was (SHA-256 of the file; "" until
    the file was read)."""

    path: str
    sha256: str = ""
    size: int = 0


def _cell(cell) -> tuple | None:
    if cell is None:
        return None
    return tuple(tuple(float(v) for v in row) for row in cell)


@dataclass(frozen=True)
class ImageCalibration:
    """How one image is calibrated.

    ``user`` marks a pixel size the user typed or confirmed (Auto): only such a one is passed
    to the analysis, so by default it calibrates exactly as the CLI does. ``distortion`` is
    the scan distortion the last analysis measured (name, value pairs; empty before one).
    """

    pixel_size_nm: float | None
    source: str = "none"
    message: str = ""
    user: bool = False
    confidence: float = 1.0
    lattice_px: tuple | None = None  # rows a, b of the lattice cell in px
    distortion: tuple = ()

    @classmethod
    def from_library(cls, cal, user: bool = False, message: str | None = None,
                     distortion=()) -> ImageCalibration:
        """From :class:`stackview.analysis.calibration.Calibration` (None: not calibrated)."""
        if cal is None:
            return cls(None, "none", message or "not calibrated", user)
        return cls(float(cal.pixel_size_nm), str(cal.source),
                   cal.message if message is None else message, user,
                   float(getattr(cal, "confidence", 1.0)),
                   _cell(getattr(cal, "lattice_px", None)), tuple(distortion))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["lattice_px"] = None if self.lattice_px is None else [list(r)
                                                                   for r in self.lattice_px]
        data["distortion"] = [list(p) for p in self.distortion]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ImageCalibration:
        return cls(data.get("pixel_size_nm"), data.get("source", "none"),
                   data.get("message", ""), bool(data.get("user", False)),
                   float(data.get("confidence", 1.0)), _cell(data.get("lattice_px")),
                   tuple((str(k), v) for k, v in data.get("distortion", ())))


#: words for the Edit menu ("Undo stride")
LABELS = {"material": "material", "model": "model choice", "window_nm": "window",
          "stride_nm": "stride", "refine": "two-level refinement",
          "fine_stride_nm": "fine stride", "n_views": "views", "undistort": "undistortion",
          "fit": "fit", "use_roi": "ROI", "mode": "reading mode", "rois": "ROI", "calibrations": "pixel size"}


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except (ValueError, TypeError):  # arrays: compare by identity
        return a is b


@evented(equality_operators={"results": operator.is_})
@dataclass
class Session:
    """The state of a window (see the module docstring).

    Attributes
    ----------
    images
        The open images, in list order.
    current
        The path of the image shown (None: none).
    calibrations
        Path → :class:`ImageCalibration`.
    settings
        The analysis settings (:class:`Settings`).
    rois
        Path → the image's ROI rectangle ``(x0, y0, x1, y1)`` in nm (used when
        ``settings.use_roi``); each image has its own (:attr:`roi_nm` is the current one's).
    results
        Path → :class:`stackview.analysis.analyze.AnalysisResult`.
    inspected
        The centre (nm) of the window picked on the map of the current image, or None.
    """

    images: tuple = ()
    current: str | None = None
    calibrations: dict = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    rois: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    inspected: tuple | None = None

    def __post_init__(self) -> None:
        self.history = History()

    # --- edits ---------------------------------------------------------------------------
    def edit(self, label: str = "", **changes) -> bool:
        """Assign ``changes`` (field → value) as one undoable user edit; False when nothing
        changed (nothing is recorded)."""
        before = {k: getattr(self, k) for k in changes}
        changed = {k: v for k, v in changes.items() if not _same(before[k], v)}
        if not changed:
            return False
        before = {k: before[k] for k in changed}
        if not label:
            names = []
            for k in changed:
                if k == "settings":  # name the settings that changed, not "settings"
                    names += [f.name for f in fields(Settings)
                              if not _same(getattr(before[k], f.name),
                                           getattr(changed[k], f.name))]
                else:
                    names.append(k)
            label = ", ".join(dict.fromkeys(LABELS.get(k, k) for k in names))
        self.history.record(Edit(label, before, changed))
        self._assign(changed)
        return True

    def _assign(self, values: dict) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def undo(self) -> str | None:
        """Undo the last edit; returns its label (None: nothing to undo)."""
        edit = self.history.pop_undo()
        if edit is None:
            return None
        self._assign(edit.before)
        return edit.label

    def redo(self) -> str | None:
        edit = self.history.pop_redo()
        if edit is None:
            return None
        self._assign(edit.after)
        return edit.label

    def set_settings(self, label: str = "", **values) -> bool:
        """Change some settings as one user edit (e.g. a model choice and its window)."""
        return self.edit(label, settings=replace(self.settings, **values))

    def set_roi(self, roi_nm, path: str | None = None, undoable: bool = True) -> bool:
        """The ROI of the image at ``path`` (default: the current one; None removes it): a
        user edit (undoable), or the program's (``undoable=False``: the rectangle a view put
        on an image that had none)."""
        path = self.current if path is None else str(path)
        if path is None:
            raise ValueError("an ROI belongs to an image, and no image is given or shown")
        rois = {k: v for k, v in self.rois.items() if k != path}
        if roi_nm is not None:
            rois[path] = tuple(round(float(v), 9) for v in roi_nm)
        if _same(rois, self.rois):
            return False
        if undoable:
            return self.edit("ROI", rois=rois)
        self.rois = rois
        return True

    def set_calibration(self, path: str, calibration: ImageCalibration,
                        undoable: bool = True) -> bool:
        """The calibration of the image at ``path``: a user edit (undoable) or what the
        program read or measured (``undoable=False``)."""
        if _same(self.calibrations.get(path), calibration):
            return False
        new = {**self.calibrations, path: calibration}
        if undoable:
            return self.edit("pixel size", calibrations=new)
        self.calibrations = new
        return True

    def set_pixel_size(self, path: str, pixel_size_nm: float, message: str | None = None
                       ) -> bool:
        """The user gives the pixel size of an image (keeps the lattice cell it had)."""
        old = self.calibrations.get(path) or ImageCalibration(None)
        px = float(pixel_size_nm)
        return self.set_calibration(path, replace(
            old, pixel_size_nm=px, source="user", user=True, confidence=1.0,
            message=message or f"pixel size {px:g} nm/px given by the user"))

    # --- program state (not undoable) ------------------------------------------------------
    def add_images(self, paths) -> None:
        known = {ref.path for ref in self.images}
        new = tuple(ImageRef(str(p)) for p in dict.fromkeys(map(str, paths)) if str(p) not in
                    known)
        if new:
            self.images = self.images + new

    def set_image_ref(self, ref: ImageRef) -> None:
        """Record what an image file was when it was read (its checksum)."""
        images = list(self.images)
        for k, old in enumerate(images):
            if old.path == ref.path:
                images[k] = ref
                break
        else:
            images.append(ref)
        self.images = tuple(images)

    def image_ref(self, path: str) -> ImageRef | None:
        return next((ref for ref in self.images if ref.path == path), None)

    def set_result(self, path: str, result) -> None:
        self.results = {**self.results, path: result}

    def update_results(self, results: dict) -> None:
        self.results = {**self.results, **results}

    # --- read-outs -------------------------------------------------------------------------
    def calibration(self, path: str | None = None) -> ImageCalibration | None:
        return self.calibrations.get(self.current if path is None else path)

    def roi(self, path: str | None = None) -> tuple | None:
        """The ROI of an image (the current one); None: it has none."""
        return self.rois.get(self.current if path is None else path)

    @property
    def roi_nm(self) -> tuple | None:
        """The current image's ROI (read-only; :meth:`set_roi` changes it)."""
        return self.roi()

    def pixel_size_nm(self, path: str | None = None) -> float | None:
        """The pixel size of an image (the current one): None when it is not calibrated."""
        cal = self.calibration(path)
        return None if cal is None else cal.pixel_size_nm

    def display_pixel_size_nm(self, path: str | None = None) -> float:
        """The pixel size views use (the default one for an uncalibrated image)."""
        px = self.pixel_size_nm(path)
        return px if px else DEFAULT_PIXEL_SIZE_NM

    def analysis_settings(self, path: str | None = None, with_roi: bool = True
                          ) -> AnalysisSettings:
        """What the analysis of an image (the current one) runs with: the user's pixel size
        only (else the analysis calibrates as the CLI), the ROI when it is switched on."""
        s, cal, roi = self.settings, self.calibration(path), self.roi(path)
        use_roi = with_roi and s.use_roi and roi is not None
        return AnalysisSettings(
            model=s.model, material=s.material,
            pixel_size_nm=cal.pixel_size_nm if (cal is not None and cal.user) else None,
            window_nm=s.window_nm, stride_nm=s.stride_nm, refine=s.refine,
            fine_stride_nm=s.fine_stride_nm, roi_nm=tuple(roi) if use_roi else None,
            n_views=s.n_views, undistort=s.undistort, fit=s.fit, mode=s.mode)

    # --- whole sessions --------------------------------------------------------------------
    #: the state, in the order :meth:`load` assigns it (the image shown last: its views read
    #: the rest)
    STATE = ("images", "calibrations", "settings", "rois", "results", "inspected", "current")

    def state(self) -> dict:
        return {name: getattr(self, name) for name in self.STATE}

    def load(self, other: Session) -> None:
        """Take over another session's state (an opened one); the history starts afresh."""
        for name in self.STATE:
            setattr(self, name, getattr(other, name))
        self.history.clear()

"""Saving and opening a :class:`~stackview.session.model.Session` as a folder (no Qt).

A session folder holds::

    session.json           images (path, path relative to the folder, SHA-256, size), their
                           calibrations and ROIs, the settings, the image shown, the inspected
                           window, an index of the results and the provenance
    results/<name>.pkl     each image's AnalysisResult without its pixels and network (the
                           image is read again from its file, the model from its bundle)
    results/<name>.json    the same result's summary.json, for people and other programs

Every file is written atomically (:mod:`stackview.io.atomic`), the results first and
``session.json`` last, so a crash or a cancel leaves the previous session readable. Results are
read back with a restricted unpickler that builds only stackview's own classes, numpy arrays
and plain containers: a session folder cannot run code when it is opened.

Opening checks every image against its checksum; an image that moved (and is not found beside
the folder either) or changed is left out with one sentence saying so, and its results with it.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import pickle
import platform
import sys
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from stackview import __version__
from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.session.model import ImageCalibration, ImageRef, Session, Settings

FORMAT = "stackview-session"
VERSION = 1
SESSION_FILE = "session.json"
RESULTS = "results"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def image_ref(path: str | os.PathLike) -> ImageRef:
    """What the file at ``path`` is now (its checksum and size)."""
    p = Path(path)
    return ImageRef(str(p), file_sha256(p), p.stat().st_size)


# --- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleRef:
    """Stands in for a result's bundle in a saved session (the network is not copied)."""

    path: str | None
    name: str


def _bundle_ref(bundle) -> BundleRef:
    path = getattr(bundle, "path", None)
    return BundleRef(None if path is None else str(path), bundle.card.name)


def dump_result(result) -> bytes:
    """The result without its image and network (see the module docstring)."""
    light = replace(result, image=None, bundle=_bundle_ref(result.bundle))
    return pickle.dumps(light, protocol=pickle.HIGHEST_PROTOCOL)


#: what a saved result may be built of besides stackview's own classes
_ALLOWED = {
    ("builtins", name) for name in ("set", "frozenset", "slice", "complex", "range", "tuple",
                                    "list", "dict", "bytearray", "bytes", "object", "float",
                                    "int", "str", "bool")
} | {("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
     ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "PurePosixPath"),
     ("pathlib", "PureWindowsPath"), ("pathlib", "Path")}
_NUMPY = {"_reconstruct", "scalar", "dtype", "ndarray", "_frombuffer"}


class _ResultUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.split(".")[0] == "numpy" and (name in _NUMPY or name.endswith("DType")):
            return super().find_class(module, name)
        if module == "stackview" or module.startswith("stackview."):
            obj = super().find_class(module, name)
            if isinstance(obj, type):  # classes only: no function of the library is called
                return obj
        raise pickle.UnpicklingError(f"a saved result may not contain {module}.{name}")


def load_result(data: bytes):
    return _ResultUnpickler(io.BytesIO(data)).load()


# --- saving ----------------------------------------------------------------------------------
def _json_default(value):
    from stackview.analysis.export import _json  # summary.json's own encoder

    return _json(value)


def provenance(session: Session, extra: dict | None = None) -> dict:
    """Who wrote the session and with what: stackview's version, Python, the machine and,
    per result, the model and the options of its analysis."""
    analyses = {}
    for path, result in session.results.items():
        card = result.bundle.card if hasattr(result.bundle, "card") else None
        bundle = result.bundle
        s = result.smap
        analyses[path] = {
            "model": card.name if card is not None else getattr(bundle, "name", None),
            "model_path": None if getattr(bundle, "path", None) is None else str(bundle.path),
            "window_nm": float(s.window_nm), "stride_nm": float(s.stride_nm),
            "mode": s.mode, "n_windows": int(s.n_patches),
            "pixel_size_nm": float(result.calibration.pixel_size_nm),
            "calibration_source": result.calibration.source,
            "undistorted": bool(result.undistorted), "fit": result.fit is not None,
            "seconds": round(float(result.seconds), 3),
        }
    return {"stackview_version": __version__,
            "saved_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(), "platform": platform.platform(),
            "argv": list(sys.argv[:1]), "analyses": analyses, **(extra or {})}


def save_session(session: Session, folder: str | os.PathLike, progress=null_progress,
                 cancel: CancelToken | None = None, extra_provenance: dict | None = None
                 ) -> Path:
    """Write ``session`` into ``folder`` (created; a session saved there before is replaced
    only once the new one is complete). Returns the folder."""
    cancel = cancel or CancelToken()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    total = len(session.images) + len(session.results) + 1
    images = []
    for k, ref in enumerate(session.images):
        cancel.check()
        progress(k, total, f"checking {Path(ref.path).name}")
        if not ref.sha256:
            if not Path(ref.path).is_file():
                raise UsageError(f"{Path(ref.path).name} is no longer at {ref.path}, so the "
                                 "session cannot refer to it; open it again or remove it")
            ref = image_ref(ref.path)
        images.append(ref)
    token = uuid.uuid4().hex[:8]
    index, written = {}, set()
    for k, (path, result) in enumerate(session.results.items()):
        cancel.check()
        progress(len(images) + k, total, f"results of {Path(path).name}")
        name = f"{k:03d}-{Path(path).stem[:40]}-{token}"
        with atomic_path(folder / RESULTS / f"{name}.pkl") as tmp:
            tmp.write_bytes(dump_result(result))
        summary = json.dumps(result.summary(), indent=2, ensure_ascii=False,
                             default=_json_default)
        write_text_atomic(folder / RESULTS / f"{name}.json", summary + "\n")
        index[path] = {"file": f"{RESULTS}/{name}.pkl", "summary": f"{RESULTS}/{name}.json"}
        written |= {f"{name}.pkl", f"{name}.json"}
    data = {
        "format": FORMAT, "version": VERSION,
        "images": [{"path": ref.path, "relative": _relative(ref.path, folder),
                    "sha256": ref.sha256, "size": ref.size} for ref in images],
        "current": session.current,
        "calibrations": {p: c.to_dict() for p, c in session.calibrations.items()},
        "settings": session.settings.to_dict(),
        "rois": {p: list(r) for p, r in session.rois.items()},
        "inspected": None if session.inspected is None else list(session.inspected),
        "results": index,
        "provenance": provenance(session, extra_provenance),
    }
    cancel.check()
    write_text_atomic(folder / SESSION_FILE, json.dumps(data, indent=2, ensure_ascii=False,
                                                        default=_json_default) + "\n")
    for old in (folder / RESULTS).glob("*") if (folder / RESULTS).is_dir() else ():
        if old.name not in written and old.suffix in (".pkl", ".json"):
            old.unlink()  # a previous save's results, no longer referenced
    progress(total, total, "")
    return folder


def _relative(path: str, folder: Path) -> str | None:
    try:
        return os.path.relpath(path, folder)
    except ValueError:  # another drive (Windows)
        return None


# --- opening ---------------------------------------------------------------------------------
@dataclass
class OpenedSession:
    """A session read from a folder, the images read for it, and what could not be restored
    (one sentence each)."""

    session: Session
    folder: Path
    images: dict = field(default_factory=dict)  # path -> stackview.io.readers.LoadedImage
    problems: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)


def read_session_file(folder: str | os.PathLike) -> dict:
    path = Path(folder) / SESSION_FILE
    if not path.is_file():
        raise UsageError(f"{folder} holds no stackview session (no {SESSION_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read as a session ({exc})") from None
    if data.get("format") != FORMAT or int(data.get("version", 0)) > VERSION:
        raise UsageError(f"{path} is not a stackview session of a version this program reads")
    return data


def _locate(entry: dict, folder: Path) -> tuple[str | None, str | None]:
    """(the path the image is at now, or None; a sentence when it moved or changed)."""
    path, name = entry["path"], Path(entry["path"]).name
    candidates = [Path(path)]
    if entry.get("relative"):
        candidates.append((folder / entry["relative"]).resolve())
    candidates.append(folder / name)
    found_changed = False
    for candidate in candidates:
        if candidate.is_file():
            if not entry.get("sha256") or file_sha256(candidate) == entry["sha256"]:
                return str(candidate), None
            found_changed = True
    if found_changed:
        return None, (f"{name} has changed since the session was saved (its checksum differs), "
                      "so it and its results were left out.")
    return None, (f"{name} is no longer at {path} (moved or deleted), so it and its results "
                  "were left out.")


def open_session(folder: str | os.PathLike, progress=null_progress,
                 cancel: CancelToken | None = None, load_bundle=None) -> OpenedSession:
    """Read a session folder back (see the module docstring). ``load_bundle(path_or_name)``
    loads a result's model (default: :func:`stackview.models.bundle.load_bundle`, cached)."""
    from stackview.io.readers import read_image

    cancel = cancel or CancelToken()
    folder = Path(folder)
    data = read_session_file(folder)
    bundles: dict = {}
    if load_bundle is None:
        from stackview.models.bundle import load_bundle

    def bundle_for(ref: BundleRef):
        key = ref.path or ref.name
        if key not in bundles:
            try:
                bundles[key] = load_bundle(ref.path) if ref.path else load_bundle(ref.name)
            except (UsageError, OSError, ValueError):
                bundles[key] = load_bundle(ref.name)  # the bundle moved: the library's one
        return bundles[key]

    problems, moved = [], {}
    refs, loaded = [], {}
    entries = data.get("images", [])
    total = len(entries) + len(data.get("results", {}))
    for k, entry in enumerate(entries):
        cancel.check()
        progress(k, total, f"reading {Path(entry['path']).name}")
        now, problem = _locate(entry, folder)
        if problem:
            problems.append(problem)
            continue
        moved[entry["path"]] = now
        refs.append(ImageRef(now, entry.get("sha256", ""), int(entry.get("size", 0))))
        loaded[now] = read_image(now)

    def renamed(path):
        return moved.get(path)

    calibrations = {renamed(p): ImageCalibration.from_dict(c)
                    for p, c in data.get("calibrations", {}).items() if renamed(p)}
    rois = dict(data.get("rois") or {})
    if data.get("roi_nm") is not None and data.get("current"):  # an earlier save's one ROI
        rois.setdefault(data["current"], data["roi_nm"])
    rois = {renamed(p): tuple(float(v) for v in r) for p, r in rois.items() if renamed(p)}
    results = {}
    for k, (path, item) in enumerate(data.get("results", {}).items()):
        cancel.check()
        progress(len(entries) + k, total, f"results of {Path(path).name}")
        now = renamed(path)
        if now is None:
            continue
        try:
            result = load_result((folder / item["file"]).read_bytes())
            result = replace(result, image=loaded[now].data,
                             bundle=bundle_for(result.bundle),
                             path=Path(now) if result.path is not None else None)
        except (OSError, pickle.UnpicklingError, AttributeError, ImportError, EOFError,
                UsageError, ValueError) as exc:
            problems.append(f"The results of {Path(now).name} could not be read back "
                            f"({type(exc).__name__}); run its analysis again.")
            continue
        results[now] = result
    current = renamed(data["current"]) if data.get("current") else None
    session = Session(
        images=tuple(refs), current=current, calibrations=calibrations,
        settings=Settings.from_dict(data.get("settings", {})),
        rois=rois,
        results=results,
        inspected=(tuple(data["inspected"]) if data.get("inspected") and current in results
                   else None))
    progress(total, total, "")
    return OpenedSession(session, folder, loaded, problems, data.get("provenance", {}))

"""Read microscope images into one 2-D float image with its calibration (no Qt here).

Formats: TIFF (ImageJ and OME calibration), PNG/JPEG/BMP (no calibration), Gatan DM3/DM4, Velox
and NCEM EMD, FEI TIA SER and MRC (through rosettasciio), and NumPy ``.npy`` arrays. Stacks are
averaged over frames and colour images converted to grey, each with a note saying so. Every
failure is a :class:`stackview.errors.UsageError` with one sentence naming the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stackview.errors import UsageError

log = logging.getLogger(__name__)

#: file suffix -> reader kind
SUFFIXES = {
    ".tif": "tiff", ".tiff": "tiff",
    ".png": "pillow", ".jpg": "pillow", ".jpeg": "pillow", ".bmp": "pillow",
    ".dm3": "dm", ".dm4": "dm",
    ".emd": "emd",
    ".ser": "ser",
    ".mrc": "mrc",
    ".npy": "npy",
}
#: length units -> nm
_UNITS_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0,
    "µm": 1e3, "um": 1e3, "\u03bcm": 1e3, "micron": 1e3, "micrometer": 1e3,
    "å": 0.1, "a": 0.1, "angstrom": 0.1, "ångström": 0.1, "\u00c5": 0.1,
    "pm": 1e-3, "m": 1e9, "mm": 1e6,
}
MIN_SIDE_PX = 32


@dataclass
class LoadedImage:
    """A 2-D float32 image with its calibration.

    Attributes
    ----------
    data
        The image, float32, shape (ny, nx), row = y.
    pixel_size_nm
        Pixel size from the file's metadata, or None when the file carries none.
    calibration_source
        ``"metadata"`` when the pixel size came from the file, else None.
    notes
        Sentences about what was done to the data (stack averaged, colour converted, ...).
    path
        Where it came from.
    """

    data: np.ndarray
    pixel_size_nm: float | None
    calibration_source: str | None
    path: Path
    notes: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def supported_suffixes() -> list[str]:
    return sorted(SUFFIXES)


def read_image(path: str | Path) -> LoadedImage:
    """Read an image file (see module docstring) and validate its content.

    Raises
    ------
    UsageError
        Missing, unsupported, corrupt, empty or non-finite images, in one sentence.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"the file {path} does not exist")
    if path.is_dir():
        raise UsageError(f"{path} is a folder, not an image file")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UsageError(
            f"stackview cannot read '{path.suffix or path.name}' files; supported are "
            + ", ".join(supported_suffixes())
        )
    if path.stat().st_size == 0:
        raise UsageError(f"{path.name} is an empty file")
    try:
        data, pixel_nm, meta = _READERS[kind](path)
    except UsageError:
        raise
    except ImportError as exc:  # an optional reader library, not a bad file
        raise UsageError(
            f"reading {kind.upper()} files needs the Python package '{exc.name or exc}', which "
            f"is not installed (pip install {exc.name or 'it'})"
        ) from exc
    except Exception as exc:  # readers raise anything from ValueError to struct.error
        log.debug("reader failed", exc_info=True)
        raise UsageError(
            f"could not read {path.name}: it is not a valid {kind.upper()} image "
            f"({type(exc).__name__})"
        ) from exc
    notes: list[str] = []
    data = _to_2d(np.asarray(data), notes, path.name)
    _validate(data, path.name)
    if pixel_nm is not None and not (np.isfinite(pixel_nm) and 1e-5 < pixel_nm < 100):
        notes.append(f"ignored the file's implausible pixel size {pixel_nm:g} nm")
        pixel_nm = None
    for note in notes:
        log.info("%s: %s", path.name, note)
    return LoadedImage(
        data=data.astype(np.float32), pixel_size_nm=pixel_nm,
        calibration_source="metadata" if pixel_nm is not None else None,
        path=path, notes=notes, metadata=meta,
    )


def _to_2d(data: np.ndarray, notes: list[str], name: str) -> np.ndarray:
    if data.dtype.kind == "c":
        data = np.abs(data)
        notes.append("took the modulus of complex data")
    if data.dtype.names:  # structured RGB(A) as in some TIA/DM files
        data = np.stack([data[n] for n in data.dtype.names[:3]], axis=-1)
    data = np.squeeze(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4:
        rgb = data[..., :3].astype(np.float64)
        if np.allclose(rgb[..., 0], rgb[..., 1]) and np.allclose(rgb[..., 1], rgb[..., 2]):
            data = rgb[..., 0]
        else:
            data = rgb @ np.array([0.299, 0.587, 0.114])
            notes.append("converted the colour image to grey (luminance)")
    if data.ndim == 3:
        n = data.shape[0]
        data = data.astype(np.float64).mean(axis=0)
        notes.append(f"averaged a stack of {n} frames into one image")
    if data.ndim != 2:
        raise UsageError(f"{name} holds {data.ndim}-D data; stackview needs a 2-D image")
    return data


def _validate(data: np.ndarray, name: str) -> None:
    if min(data.shape) < MIN_SIDE_PX:
        raise UsageError(
            f"{name} is only {data.shape[1]}×{data.shape[0]} pixels; stackview needs at least "
            f"{MIN_SIDE_PX}×{MIN_SIDE_PX}"
        )
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise UsageError(f"{name} contains NaN or infinite pixel values")
    if np.ptp(data) == 0:
        raise UsageError(f"{name} is blank: every pixel has the same value")


def _unit_to_nm(scale: float, unit) -> float | None:
    if unit is None:
        return None
    u = str(unit).strip()
    factor = _UNITS_NM.get(u) or _UNITS_NM.get(u.lower())
    return None if factor is None else float(scale) * factor


# --- readers: (path) -> (array, pixel size nm or None, metadata dict) -------------------------
def _read_tiff(path: Path):
    import tifffile

    from stackview.io.tiff import read_tiff_pixel_size_nm

    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        pixel = None
        if tif.is_ome and tif.ome_metadata:
            pixel = _ome_pixel_size_nm(tif.ome_metadata)
    if pixel is None:
        pixel = read_tiff_pixel_size_nm(path)
    return data, pixel, {}


def _ome_pixel_size_nm(xml: str) -> float | None:
    import re

    m = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', xml)
    if not m:
        return None
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
    return _unit_to_nm(float(m.group(1)), unit.group(1) if unit else "µm")


def _read_pillow(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
                arr = np.asarray(im.convert("RGB"))
            else:
                arr = np.asarray(im)
    except UnidentifiedImageError as exc:
        raise UsageError(f"could not read {path.name}: it is not a valid image file") from exc
    return arr, None, {}


def _read_rsciio(module_name: str):
    def reader(path: Path):
        import importlib

        module = importlib.import_module(f"rsciio.{module_name}")
        signals = module.file_reader(str(path))
        images = [s for s in signals if np.asarray(s["data"]).ndim >= 2]
        if not images:
            raise UsageError(f"{path.name} contains no image")
        sig = images[0]
        axes = [a for a in sig.get("axes", []) if not a.get("navigate", False)]
        pixel = None
        if axes:
            pixel = _unit_to_nm(axes[-1].get("scale", 1.0), axes[-1].get("units"))
        title = sig.get("metadata", {}).get("General", {}).get("title", "")
        return sig["data"], pixel, {"title": title}

    return reader


def _read_npy(path: Path):
    return np.load(path, allow_pickle=False), None, {}


_READERS = {
    "tiff": _read_tiff,
    "pillow": _read_pillow,
    "dm": _read_rsciio("digitalmicrograph"),
    "emd": _read_rsciio("emd"),
    "ser": _read_rsciio("tia"),
    "mrc": _read_rsciio("mrc"),
    "npy": _read_npy,
}

"""Calibrated TIFF output: float32 images whose pixel size ImageJ, Fiji and tifffile read.

The pixel size goes into the ImageJ resolution tags with ``unit=nm``; free-form metadata (labels,
conditions) goes into the ImageDescription as JSON is not ImageJ-compatible, so we keep it in a
JSON sidecar written by the caller. Writes are atomic. No Qt here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stackview.errors import UsageError
from stackview.io.atomic import atomic_path


def write_calibrated_tiff(path: str | Path, image: np.ndarray, pixel_size_nm: float) -> Path:
    """Write a 2-D image (float32) as an ImageJ TIFF with its pixel size in nm."""
    import tifffile

    image = np.asarray(image)
    if image.ndim != 2:
        raise UsageError(f"expected a 2-D image, got shape {image.shape}")
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise UsageError(f"the pixel size {pixel_size_nm} nm must be a positive number")
    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp, image.astype(np.float32), imagej=True,
            resolution=(1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
            metadata={"unit": "nm", "axes": "YX"},
        )
    return path


def read_tiff_pixel_size_nm(path: str | Path) -> float | None:
    """Pixel size (nm) from a TIFF's ImageJ/resolution tags, or None when absent."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        unit = (tif.imagej_metadata or {}).get("unit", "")
        tag = page.tags.get("XResolution")
        if tag is None:
            return None
        num, den = tag.value
        if num == 0:
            return None
        per_unit = num / den
        scale = {"nm": 1.0, "nanometer": 1.0, "\\u00B5m": 1e3, "µm": 1e3, "um": 1e3,
                 "micron": 1e3, "A": 0.1, "Å": 0.1, "angstrom": 0.1}.get(unit)
        if scale is None:
            return None
        return scale / per_unit

"""The measured lattice of a real image: the FFT peaks of its central part, the lattice that
indexes them, and a candidate cell refined on the peaks it indexes.

Geometry: image offsets are (x = column, y = row) in pixels. The peak finding itself is the
calibration's (:mod:`stackview.analysis.calibration`). No Qt here.
"""

from __future__ import annotations

import numpy as np

from stackview.errors import UsageError

#: the FFT is taken on a central crop at most this many pixels on a side (memory and time stay
#: bounded for 8k² images; a 2048² crop still holds tens of unit cells)
MAX_SPECTRUM_PX = 2048


def central_crop(image: np.ndarray, max_px: int = MAX_SPECTRUM_PX) -> tuple[np.ndarray, tuple]:
    """The central part of the image at most ``max_px`` on a side, and its (x0, y0) offset."""
    img = np.asarray(image)
    ny, nx = img.shape
    h, w = min(ny, max_px), min(nx, max_px)
    y0, x0 = (ny - h) // 2, (nx - w) // 2
    return img[y0:y0 + h, x0:x0 + w], (x0, y0)


def measured_lattice(image: np.ndarray, with_peaks: bool = False):
    """The real-space lattice (rows: two vectors in px, (x, y)) that indexes the FFT's peaks
    of the image's central part, and the fraction of peak power it explains (and, with
    ``with_peaks``, the peaks: reciprocal vectors in cycles/px and strengths)."""
    from stackview.analysis.calibration import (
        _fft_peaks,
        _finer_lattice,
        _fit_reciprocal_lattice,
    )

    crop, _ = central_crop(np.asarray(image, dtype=np.float32))
    vecs, strength, spectrum = _fft_peaks(crop)
    if len(vecs) < 4:
        raise UsageError("the image's FFT shows no clear lattice peaks, so its lattice cannot be "
                         "read; check that it is an atomic-resolution image")
    g1, g2, explained = _fit_reciprocal_lattice(vecs, strength)
    g1, g2 = _finer_lattice(g1, g2, spectrum, float(np.linalg.norm(vecs, axis=1).max()))
    real = np.linalg.inv(np.stack([g1, g2])).T
    if with_peaks:
        return real, float(explained), (vecs, strength)
    return real, float(explained)


def refine_cell(cell_px: np.ndarray, peaks) -> np.ndarray:
    """A candidate cell refined on the FFT peaks it indexes (least squares, from the low
    orders outwards): the strongest peaks of a projected stack often form only an
    approximate lattice, while every true reflection lies on the true cell's reciprocal
    lattice, so the refined cell carries the exact scale and distortion."""
    vecs, strength = peaks
    g = np.linalg.inv(np.asarray(cell_px, dtype=float)).T  # rows g1, g2 (cycles/px)
    # one peak per reflection, the nearest: in a twisted bilayer the other layer's peak of the
    # same order lies ~0.17 index units away at 10°, and averaging the two would turn the cell
    # half-way between the layers; once the cell is refined the tolerance tightens
    for max_order, tol in ((2, 0.2), (4, 0.1), (8, 0.1), (16, 0.1)):
        coeffs = vecs @ np.linalg.inv(g)
        h = np.round(coeffs)
        off = np.abs(coeffs - h).max(axis=1)
        ok = (off < tol) & (np.abs(h).max(axis=1) <= max_order)
        ok &= np.abs(h).sum(axis=1) > 0
        ok &= _nearest_per_reflection(h, off)
        if ok.sum() < 3 or np.linalg.matrix_rank(h[ok]) < 2:
            break
        w = np.sqrt(np.clip(strength[ok], 1e-6, None))[:, None]
        g, *_ = np.linalg.lstsq(h[ok] * w, vecs[ok] * w, rcond=None)
    return np.linalg.inv(g).T


def _nearest_per_reflection(h: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Mask keeping, for every index (h, k), only the peak nearest to it."""
    keep = np.zeros(len(h), dtype=bool)
    order = np.lexsort((off, h[:, 1], h[:, 0]))
    prev = None
    for i in order:
        key = (h[i, 0], h[i, 1])
        if key != prev:
            keep[i] = True
            prev = key
    return keep

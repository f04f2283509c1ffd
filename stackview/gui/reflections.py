"""The lattice reflections the FFT panel circles (no Qt here: a plain function the window runs
as a background job).

The calibration reads the pixel size from a cell (rows a, b in image pixels) fitted to the
Bragg peaks of the image's power spectrum; the peaks that cell indexes (integer h, k) are the
reflections it used. :func:`calibration_reflections` finds the peaks as the lattice reading
does (:func:`stackview.analysis.lattice_peaks.measured_lattice` with ``with_peaks``) and keeps
those the given cell indexes; without a cell (a pixel size typed by the user) it indexes them
with the measured lattice itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stackview.errors import UsageError

#: a peak is indexed by a cell when each of its (h, k) coefficients is this close to an integer
#: (the tolerance of the calibration's lattice fit,
#: ``stackview.analysis.calibration._fit_reciprocal_lattice``)
INDEX_TOLERANCE = 0.12


@dataclass(frozen=True)
class Reflections:
    """Bragg peaks indexed by a cell, in cycles per pixel of the image.

    Attributes
    ----------
    vectors_px
        (n, 2) reciprocal vectors (gx, gy) in cycles/px (x = column, y = row).
    hk
        (n, 2) integer indices on the cell.
    strength
        (n,) peak strength above the spectrum's background (log units).
    first_order_px
        The longer of the cell's two first-order reciprocal vectors, cycles/px.
    source
        ``"calibration"`` (the calibration's cell) or ``"measured"`` (the FFT's own lattice).
    """

    vectors_px: np.ndarray
    hk: np.ndarray
    strength: np.ndarray
    first_order_px: float
    source: str

    def __len__(self) -> int:
        return len(self.vectors_px)


def index_peaks(vectors_px: np.ndarray, cell_px: np.ndarray,
                tol: float = INDEX_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """(mask, hk): which peaks the real-space cell (rows a, b in px) indexes, and their indices.

    A reciprocal vector g has indices (g·a, g·b) on the cell; (0, 0) is never a reflection.
    """
    cell = np.asarray(cell_px, dtype=float).reshape(2, 2)
    coeffs = np.asarray(vectors_px, dtype=float).reshape(-1, 2) @ cell.T
    hk = np.round(coeffs)
    ok = (np.abs(coeffs - hk).max(axis=1) < tol) & (np.abs(hk).sum(axis=1) > 0)
    return ok, hk.astype(int)


def calibration_reflections(image: np.ndarray, cell_px: np.ndarray | None = None,
                            progress=None, cancel=None) -> Reflections | None:
    """The FFT peaks of ``image`` that ``cell_px`` indexes (None: the FFT shows no lattice)."""
    from stackview.analysis.lattice_peaks import measured_lattice

    try:
        measured, _, (vectors, strength) = measured_lattice(image, with_peaks=True)
    except UsageError:
        return None
    source = "calibration" if cell_px is not None else "measured"
    cell = np.asarray(cell_px if cell_px is not None else measured, dtype=float).reshape(2, 2)
    ok, hk = index_peaks(vectors, cell)
    reciprocal = np.linalg.inv(cell).T  # rows g1, g2 (cycles/px): a·g1 = b·g2 = 1
    return Reflections(np.asarray(vectors, dtype=float)[ok], hk[ok],
                       np.asarray(strength, dtype=float)[ok],
                       float(np.linalg.norm(reciprocal, axis=1).max()), source)

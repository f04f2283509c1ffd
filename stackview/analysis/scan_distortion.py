"""Scan distortion: the affine map of a scan relative to an undistorted square pixel, and how
it changes from the top to the bottom of an image (a slow-scan drift that changes in time).

A reading's px-per-Å map is ``s · T · Q`` (:class:`ScanDistortion` is T); windows are sampled
through the map, so the distortion is undone before the model sees them
(:mod:`stackview.analysis.lattice_reading`). No Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from stackview.analysis.lattice_peaks import MAX_SPECTRUM_PX, refine_cell
from stackview.materials import get_material
from stackview.materials.cell import Material

if TYPE_CHECKING:
    from stackview.analysis.lattice_candidates import LatticeHypothesis


@dataclass(frozen=True)
class ScanDistortion:
    """Affine scan distortion in the image frame, relative to an undistorted square pixel.

    The image's px-per-Å map is ``s · T · Q`` with Q orthogonal (the lattice orientation and
    face), s the mean scale and T = [[scale_x, shear], [0, scale_y]] (det 1): ``scale_x`` and
    ``scale_y`` are the relative pixel scales along the fast (x) and slow (y) scan, ``shear``
    the x displacement per unit y (a linear drift along x during the slow scan).
    """

    scale_x: float
    scale_y: float
    shear: float

    @classmethod
    def from_matrix(cls, px_per_A: np.ndarray) -> ScanDistortion:
        t = _triangular_part(px_per_A)
        return cls(float(t[0, 0]), float(t[1, 1]), float(t[0, 1]))

    @property
    def magnitude(self) -> float:
        """Largest relative deviation from an undistorted pixel (0.01 = 1 %)."""
        return max(abs(self.scale_x - 1), abs(self.scale_y - 1), abs(self.shear))

    def to_dict(self) -> dict:
        return {"scale_x": round(self.scale_x, 5), "scale_y": round(self.scale_y, 5),
                "shear": round(self.shear, 5),
                "fast_slow_ratio": round(self.scale_x / self.scale_y, 5)}


def _triangular_part(m: np.ndarray) -> np.ndarray:
    """T of m = s·T·Q (T upper triangular, positive diagonal, det 1; Q orthogonal)."""
    m = np.asarray(m, dtype=float)
    # RQ decomposition from QR of the flipped transpose
    p = np.array([[0.0, 1.0], [1.0, 0.0]])
    q, r = np.linalg.qr((p @ m).T)
    t = p @ r.T @ p
    signs = np.sign(np.diag(t))
    t = t * signs[None, :]
    return t / math.sqrt(abs(np.linalg.det(t)))


#: a change of the distortion across the image below this (any component of T) is not undone
MIN_DRIFT_CHANGE = 0.002


def measure_drift(image: np.ndarray, hyp: LatticeHypothesis, material: Material | str
                  ) -> tuple[LatticeHypothesis, dict | None]:
    """How the affine map changes from the top to the bottom of the image.

    A slow-scan drift that changes during the scan (quadratic in time) makes the local affine
    map vary linearly with the row. The cell of ``hyp`` is refined on the FFT peaks of the top
    and the bottom third of the image (central columns); the difference, per row, is the
    hypothesis's ``per_row`` when it exceeds ``MIN_DRIFT_CHANGE``. Returns the hypothesis (with
    ``per_row`` and ``row0_px`` set when significant) and a report, or None for an image too
    short to tell (fewer than 4 cells per third).
    """
    from stackview.analysis.calibration import _fft_peaks

    material = get_material(material)
    img = np.asarray(image, dtype=np.float32)
    ny, nx = img.shape
    cell = np.stack([hyp.a_px, hyp.b_px]).astype(float)
    cell_len = float(np.linalg.norm(cell, axis=1).max())
    third = ny // 3
    if third < 4 * cell_len or nx < 4 * cell_len:
        return hyp, None
    x0 = max(0, (nx - MAX_SPECTRUM_PX) // 2)
    cell_A = material.cell_2d.T
    mats, rows = [], []
    for y0 in (0, ny - third):
        h0 = y0 + max(0, (third - MAX_SPECTRUM_PX) // 2)
        band = img[h0:h0 + min(third, MAX_SPECTRUM_PX), x0:x0 + MAX_SPECTRUM_PX]
        vecs, strength, _ = _fft_peaks(band)
        if len(vecs) < 4:
            return hyp, None
        refined = refine_cell(cell, (vecs, strength))
        mats.append(np.column_stack(refined) @ np.linalg.inv(cell_A))
        rows.append(h0 + band.shape[0] / 2)
    t_top, t_bottom = (_triangular_part(m) for m in mats)
    change = t_bottom - t_top
    report = {"scale_x_change": round(float(change[0, 0]), 5),
              "scale_y_change": round(float(change[1, 1]), 5),
              "shear_change": round(float(change[0, 1]), 5),
              "rows_px": [round(r, 1) for r in rows]}
    if np.abs(change).max() < MIN_DRIFT_CHANGE:
        report["corrected"] = False
        return hyp, report
    per_row = (mats[1] - mats[0]) / (rows[1] - rows[0])
    report["corrected"] = True
    # the central crop's map holds at the image's middle row
    return replace(hyp, per_row=tuple(map(tuple, per_row)), row0_px=ny / 2), report

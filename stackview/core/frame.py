"""The lattice frame in which an aligned model reads an image.

Slip models trained with ``orientation = aligned`` expect the lattice vector a along +x and b in
the upper half plane (right-handed in the pixel frame x = column, y = row). In a real image the
lattice has any orientation, the sample may be seen from either face (a mirror image) and the
scan distorts it; :class:`Frame` says how to read it in the material's convention, and
:mod:`stackview.analysis.lattice_reading` finds it (scale, orientation, face and distortion
together, by re-simulation).
No Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """How to read an image in the material's convention.

    Attributes
    ----------
    rotation_deg
        Counter-clockwise rotation (in the x = column, y = row frame) that brings the chosen a
        onto +x, applied after the mirror.
    mirror
        Flip y (rows) first: the image shows the material's other face.
    a_px, b_px
        The chosen lattice vectors in the original image (pixels, (x, y)).
    length_error
        Relative mismatch of |a|, |b| and gamma with the material's cell (smaller is better).
    px_per_A
        Optional full affine map (2×2, rows x, y) from the aligned frame's offsets (Å) to the
        original image's offsets (px), scan distortion included
        (:mod:`stackview.analysis.lattice_reading`); windows are then sampled through it
        instead of through the rotation, mirror and a single pixel size.
    px_per_A_per_row, row0_px
        Optional change of ``px_per_A`` per image row and the row where ``px_per_A`` holds: a
        scan drift that changes during the scan (quadratic in time) makes the local affine map
        vary linearly with the row; windows are then sampled through the map at their row.
    """

    rotation_deg: float
    mirror: bool
    a_px: tuple[float, float]
    b_px: tuple[float, float]
    length_error: float
    px_per_A: tuple | None = None
    px_per_A_per_row: tuple | None = None
    row0_px: float = 0.0

    def matrix(self) -> np.ndarray:
        """2×2 map from original pixel offsets (x, y) to aligned-frame offsets (x, y)."""
        m = np.diag([1.0, -1.0]) if self.mirror else np.eye(2)
        t = math.radians(self.rotation_deg)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        return rot @ m

"""Lattice orientation of an image and the candidate frames an aligned model can read.

Slip models trained with ``orientation = aligned`` expect the lattice vector a along +x and b in
the upper half plane (right-handed in the pixel frame x = column, y = row). In a real image the
lattice has any orientation, the sample may be seen from either face (a mirror image), and for
near-hexagonal cells such as ReS2's (|a| = 6.42, |b| = 6.52, |a + b| = 6.58 Å) the three
shortest lattice directions are hard to tell apart from lengths alone when the scan is slightly
distorted. :func:`candidate_frames` therefore lists every way of reading the measured lattice in
the material's convention (each shortest lattice vector as a, the right-handed completion, a
mirror where needed). The analysis itself reads scale, orientation and face together, with the
scan distortion, in :mod:`stackview.analysis.lattice_reading`; :class:`Frame` carries its result.
No Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stackview.materials.cell import Material


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


def _angle(u, v) -> float:
    return math.degrees(math.acos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))


def candidate_frames(lattice_px: np.ndarray, material: Material, max_frames: int = 6,
                     two_fold: bool = True) -> list[Frame]:
    """All readings of a measured lattice (rows a, b in px) in the material's convention.

    For each short lattice vector v (up to sign) taken as a, the b with gamma >= 90° among the
    other short vectors completes the cell; if (a, b) is left-handed the image is mirrored.
    Frames are sorted by how well the lengths and angle match the material (scale-free).
    ``two_fold``: the projected layer is 2-fold symmetric, so a frame and its 180° rotation read
    the same slip (D and −D are equivalent) and only one of them is kept.
    """
    a0, b0 = (np.asarray(v, dtype=float) for v in lattice_px)
    shell = []
    for m, n in ((1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2)):
        v = m * a0 + n * b0
        shell.append(v)
    shell.sort(key=lambda v: float(np.linalg.norm(v)))
    shell = shell[:3]
    frames = []
    ratio_mat = material.b_A / material.a_A
    for a in shell:
        for s_a in (1, -1):
            av = s_a * a
            for b in shell:
                for s_b in (1, -1):
                    bv = s_b * b
                    if np.allclose(bv, av) or np.allclose(bv, -av):
                        continue
                    if av @ bv > 1e-9:  # gamma >= 90
                        continue
                    cross = av[0] * bv[1] - av[1] * bv[0]
                    mirror = cross < 0
                    af = av * np.array([1.0, -1.0]) if mirror else av
                    rot = -math.degrees(math.atan2(af[1], af[0]))
                    ratio = np.linalg.norm(bv) / np.linalg.norm(av)
                    err = (abs(ratio - ratio_mat) / ratio_mat
                           + abs(_angle(av, bv) - material.gamma_deg) / 60.0)
                    frames.append(Frame(round(rot, 6), bool(mirror), tuple(av), tuple(bv), err))
    # a 180° rotation of a 2-fold layer maps slip D to -D (equivalent): keep one of each pair
    unique: list[Frame] = []
    for f in sorted(frames, key=lambda f: f.length_error):
        if two_fold and any(
                f.mirror == g.mirror and abs(((f.rotation_deg - g.rotation_deg) % 360) - 180) < 1e-3
                for g in unique):
            continue
        if any(f.mirror == g.mirror and abs((f.rotation_deg - g.rotation_deg) % 360) < 1e-3
               for g in unique):
            continue
        unique.append(f)
    return unique[:max_frames]

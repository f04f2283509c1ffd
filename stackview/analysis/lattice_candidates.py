"""Reading candidates: every plausible reading of a measured lattice as the material's cell.

Projected stacks have weak fundamental reflections and strong higher orders, so the measured
lattice may be a sub- or supercell of the material's, and near-hexagonal cells fit it in
several orientations: each related cell of index 1–4 × each assignment of the material's a, b
(both faces) whose affine map is a plausible scan distortion is a :class:`LatticeHypothesis`;
:func:`stackview.analysis.lattice_reading.read_lattice` decides among them. No Qt here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from stackview.analysis.lattice_peaks import refine_cell
from stackview.analysis.scan_distortion import ScanDistortion
from stackview.core.frame import Frame
from stackview.errors import UsageError
from stackview.materials import get_material
from stackview.materials.cell import Material, reduce_basis_2d

#: hypotheses whose affine map is more anisotropic than this are not scan distortions
MAX_ANISOTROPY = 0.07


@dataclass(frozen=True)
class LatticeHypothesis:
    """One reading of the measured lattice as the material's cell.

    Attributes
    ----------
    px_per_A
        2×2 map from the material's Cartesian offsets (Å) to image offsets (px).
    a_px, b_px
        The material's a and b in the image (px, (x, y)).
    scale_label
        The cell relative to the measured lattice, e.g. ``"×1"`` or ``"index 3 supercell"``.
    score
        Median re-simulation NCC of the windows read under it (NaN until scored).
    quick
        Scored on two windows only (a reading that lost the first round).
    """

    px_per_A: tuple
    a_px: tuple
    b_px: tuple
    scale_label: str
    score: float = float("nan")
    quick: bool = False
    #: change of px_per_A per image row and the row where px_per_A holds (measure_drift)
    per_row: tuple | None = None
    row0_px: float = 0.0
    #: the field holds enough cells (4) for the distortion to be measured, not guessed
    precise: bool = True

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.px_per_A, dtype=float)

    @property
    def pixel_size_nm(self) -> float:
        return 0.1 / math.sqrt(abs(np.linalg.det(self.matrix)))

    @property
    def distortion(self) -> ScanDistortion:
        return ScanDistortion.from_matrix(self.matrix)

    @property
    def anisotropy(self) -> float:
        s = np.linalg.svd(self.matrix, compute_uv=False)
        return float(s[0] / s[1] - 1)

    def frame(self, undistort: bool = True, pixel_size_nm: float | None = None,
              rotate: bool = True) -> Frame:
        """The :class:`~stackview.core.frame.Frame` windows are sampled in.

        ``undistort``: sample through the full affine map (else its closest similarity);
        ``pixel_size_nm``: force the mean scale (a user's or the file's calibration);
        ``rotate``: False for models trained on any orientation (only the distortion is
        undone, the image keeps its orientation).
        """
        m = self.matrix
        undistort = undistort and self.precise
        u, s, vt = np.linalg.svd(m)
        q = u @ vt  # closest orthogonal map: the lattice orientation (and face)
        scale = math.sqrt(abs(np.linalg.det(m)))
        factor = 1.0
        if pixel_size_nm is not None:
            factor = (0.1 / pixel_size_nm) / scale
            m = m * factor
            scale = 0.1 / pixel_size_nm
        if not rotate:
            sym = m @ q.T  # the image-frame stretch alone (symmetric part of the polar form)
            m = sym if undistort else np.eye(2) * scale
            q = np.eye(2)
        elif not undistort:
            m = q * scale
        mirror = bool(np.linalg.det(q) < 0)
        r = q.T @ (np.diag([1.0, -1.0]) if mirror else np.eye(2))
        rot = math.degrees(math.atan2(r[1, 0], r[0, 0]))
        per_row = None
        if self.per_row is not None and undistort and rotate:
            per_row = tuple(map(tuple, np.asarray(self.per_row) * factor))
        return Frame(round(rot, 6), mirror, tuple(self.a_px), tuple(self.b_px),
                     self.anisotropy, px_per_A=tuple(map(tuple, m)), px_per_A_per_row=per_row,
                     row0_px=self.row0_px)


def _integer_matrices(det: int):
    rng = range(-2, 3)
    for m in itertools.product(rng, rng, rng, rng):
        if m[0] * m[3] - m[1] * m[2] == det:
            yield np.array(m, dtype=float).reshape(2, 2)


def related_cells(lattice_px: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Reduced cells of index 1–4 related to the measured lattice: supercells N·L and the
    sub-cells C with L = N·C (the measured lattice a supercell of the true one)."""
    base = np.asarray(lattice_px, dtype=float)
    out: list[tuple[np.ndarray, str]] = []
    seen: list[np.ndarray] = []

    def add(cell, label):
        try:
            u, v = reduce_basis_2d(cell[0], cell[1])
        except UsageError:
            return
        c = np.stack([u, v])
        area = abs(np.linalg.det(c))
        for s in seen:
            # the same lattice: each basis an integer combination of the other
            if math.isclose(abs(np.linalg.det(s)), area, rel_tol=1e-6):
                k = c @ np.linalg.inv(s)
                if np.allclose(k, np.round(k), atol=1e-6):
                    return
        seen.append(c)
        out.append((c, label))

    add(base, "×1")
    for det in (2, 3, 4):
        for n in _integer_matrices(det):
            add(n @ base, f"index-{det} supercell")
        for n in _integer_matrices(det):
            add(np.linalg.inv(n) @ base, f"index-{det} sub-cell")
    return out


def lattice_hypotheses(lattice_px: np.ndarray, material: Material | str,
                       max_anisotropy: float = MAX_ANISOTROPY,
                       pixel_size_nm: float | None = None,
                       pixel_tolerance: float = 0.1, peaks=None,
                       field_px: float | None = None) -> list[LatticeHypothesis]:
    """Every plausible reading of the measured lattice as the material's cell.

    For each related cell and each choice of the material's a among its three shortest
    lattice vectors (±) with b completing the cell (either handedness: the two faces), the
    affine map material → image is kept when its anisotropy (ratio of singular values − 1) is
    at most ``max_anisotropy``; readings that differ by a symmetry of the projected layer are
    one reading. With ``pixel_size_nm`` only readings within ``pixel_tolerance`` of that
    pixel size are kept. With ``peaks`` (from :func:`measured_lattice`) every cell is
    refined on the peaks first (:func:`refine_cell`). ``field_px`` (the image's shorter side)
    widens the anisotropy allowed for fields only a few cells across, whose peak positions
    are known to a fraction of a cell over the field (+0.4 / cells), and marks such readings
    imprecise (fewer than 4 cells: their distortion is not undone).
    """
    from stackview.core.labels import projected_symmetry_ops

    material = get_material(material)
    cell_A = material.cell_2d.T  # columns a, b (Å)
    ops = projected_symmetry_ops(material)
    hyps: list[LatticeHypothesis] = []
    for cell, label in related_cells(lattice_px):
        if peaks is not None:
            try:
                cell = np.stack(reduce_basis_2d(*refine_cell(cell, peaks)))
            except (UsageError, np.linalg.LinAlgError):
                continue
        u, v = cell
        cells = (field_px / float(max(np.linalg.norm(u), np.linalg.norm(v)))
                 if field_px else np.inf)
        allowed = max_anisotropy + (0.4 / cells if np.isfinite(cells) else 0.0)
        shell = sorted([u, v, u + v, u - v], key=lambda w: float(np.linalg.norm(w)))[:3]
        for a in shell:
            for b in shell:
                for sa, sb in itertools.product((1, -1), (1, -1)):
                    av, bv = sa * a, sb * b
                    if abs(av[0] * bv[1] - av[1] * bv[0]) < 1e-6 * np.linalg.norm(av) ** 2:
                        continue
                    m = np.column_stack([av, bv]) @ np.linalg.inv(cell_A)
                    s = np.linalg.svd(m, compute_uv=False)
                    if s[0] / s[1] - 1 > allowed:
                        continue
                    h = LatticeHypothesis(tuple(map(tuple, m)), tuple(av), tuple(bv), label,
                                          precise=bool(cells >= 4))
                    if pixel_size_nm is not None and abs(
                            h.pixel_size_nm / pixel_size_nm - 1) > pixel_tolerance:
                        continue
                    same = [k for k, g in enumerate(hyps) if _same_reading(h.matrix, g.matrix, ops)]
                    if not same:
                        hyps.append(h)
                    elif _turn_deg(h.matrix) < _turn_deg(hyps[same[0]].matrix) - 1e-6:
                        hyps[same[0]] = h
    hyps.sort(key=lambda h: h.anisotropy)
    return hyps


def _turn_deg(m: np.ndarray) -> float:
    """|rotation| (degrees) of the orientation part of m. Of two readings that differ by a
    symmetry of the projected layer (e.g. a 180° turn), the one turned least is kept, so the
    frame does not flip with the signs the peak fit happens to give the cell vectors: the two
    are one reading for the lattice, but not exactly for the re-simulation check (a 180° turn
    turns D into −D, which depth effects tell apart by ~0.01 NCC)."""
    u, _, vt = np.linalg.svd(m)
    q = u @ vt
    if np.linalg.det(q) < 0:
        q = q @ np.diag([1.0, -1.0])
    return abs(math.degrees(math.atan2(q[1, 0], q[0, 0])))


def _same_reading(m1: np.ndarray, m2: np.ndarray, ops) -> bool:
    """m2 = m1·op for a symmetry op of the layer: the two readings see the same image."""
    inv = np.linalg.inv(m1)
    k = inv @ m2
    return any(np.allclose(k, op, atol=2e-3) for op in ops)

"""Reading a real image's lattice: pixel size, lattice frame, face and scan distortion.

The FFT of a real file gives a measured lattice (two vectors in pixels), but not which cell of
the material it is: projected stacks have weak fundamental reflections and strong higher orders
(hexagonal cells: √3 and 2 shells; ReS2/ReSe2: Re4-chain reflections), so the strongest peaks
may index a sub- or supercell, and near-hexagonal cells fit the measured vectors in several
orientations. So the reading is a search over hypotheses: every cell of index 1–4 related to
the measured lattice (super- and sub-cells) × every assignment of the material's a, b to its
short vectors (both faces), kept when the affine map between the material's cell and the
measured one is a plausible scan distortion, and decided by how well the re-simulated stack
matches a few windows read under each hypothesis (:func:`read_lattice`). The affine map itself
is the distortion correction: windows are sampled through it, so a few per cent of fast/slow
scan scale and shear (linear drift) are undone before the model sees them.

Geometry: image offsets are (x = column, y = row) in pixels; the material's Cartesian frame
(Å) has a along +x. ``px_per_A`` maps material Cartesian offsets (Å) to image offsets (px).
No Qt here; torch only inside the scorers.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from stackview.analysis.orient import Frame
from stackview.errors import UsageError
from stackview.materials import get_material
from stackview.materials.cell import Material, reduce_basis_2d

log = logging.getLogger(__name__)

#: the FFT is taken on a central crop at most this many pixels on a side (memory and time stay
#: bounded for 8k² images; a 2048² crop still holds tens of unit cells)
MAX_SPECTRUM_PX = 2048
#: hypotheses are scored on windows from a central crop at most this many pixels on a side
SCORING_CROP_PX = 1536
#: hypotheses whose affine map is more anisotropic than this are not scan distortions
MAX_ANISOTROPY = 0.07
#: NCC margin by which the best scale must beat the best other scale to be called decided
MIN_SCALE_MARGIN = 0.05
#: NCC margin below which two orientations/faces that give different labels are ambiguous
MIN_FRAME_MARGIN = 0.03


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
        """The :class:`~stackview.analysis.orient.Frame` windows are sampled in.

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


@dataclass
class LatticeReading:
    """The chosen hypothesis and the evidence for it.

    ``confidence`` (0–1) combines the best NCC and its margin over the best reading at another
    scale; ``reliable`` is False with a one-sentence ``reason`` when the best match is poor or
    another scale matches almost as well.
    """

    best: LatticeHypothesis
    hypotheses: list[LatticeHypothesis]
    confidence: float
    reliable: bool
    reason: str = ""
    scale_margin: float = float("nan")
    frame_margin: float = float("nan")
    notes: list[str] = field(default_factory=list)
    drift: dict | None = None

    @property
    def pixel_size_nm(self) -> float:
        return self.best.pixel_size_nm

    @property
    def distortion(self) -> ScanDistortion:
        return self.best.distortion

    def to_dict(self) -> dict:
        return {"pixel_size_nm": round(self.pixel_size_nm, 7),
                "confidence": round(self.confidence, 3), "reliable": self.reliable,
                "reason": self.reason, "best_ncc": _r(self.best.score),
                "scale_margin_ncc": _r(self.scale_margin),
                "frame_margin_ncc": _r(self.frame_margin),
                "scan_distortion": self.distortion.to_dict(),
                "drift_change_top_to_bottom": self.drift,
                "hypotheses": [{"pixel_size_nm": round(h.pixel_size_nm, 7),
                                "scale": h.scale_label, "anisotropy": round(h.anisotropy, 4),
                                "ncc": _r(h.score), "windows": 2 if h.quick else "all"}
                               for h in self.hypotheses]}


def _r(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 4)


# --- the measured lattice ------------------------------------------------------------------
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
    from stackview.analysis.calibration import _fft_peaks, _finer_lattice, _fit_reciprocal_lattice

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
                    if any(_same_reading(h.matrix, g.matrix, ops) for g in hyps):
                        continue
                    hyps.append(h)
    hyps.sort(key=lambda h: h.anisotropy)
    return hyps


def _same_reading(m1: np.ndarray, m2: np.ndarray, ops) -> bool:
    """m2 = m1·op for a symmetry op of the layer: the two readings see the same image."""
    inv = np.linalg.inv(m1)
    k = inv @ m2
    return any(np.allclose(k, op, atol=2e-3) for op in ops)


# --- deciding by re-simulation -------------------------------------------------------------
def score_positions_px(shape, half_px: float, n: int = 6, seed: int = 0) -> np.ndarray:
    """``n`` window centres (px, (x, y)) spread over the image, ``half_px`` from its edges
    (the centre alone when the image is only one window wide)."""
    ny, nx = shape
    rng = np.random.default_rng(seed)
    lo_x, hi_x = min(half_px, nx / 2), max(nx - half_px, nx / 2)
    lo_y, hi_y = min(half_px, ny / 2), max(ny - half_px, ny / 2)
    k = max(1, int(math.ceil(math.sqrt(n))))
    gx = np.linspace(lo_x, hi_x, k + 2)[1:-1] if hi_x > lo_x else np.array([nx / 2])
    gy = np.linspace(lo_y, hi_y, k + 2)[1:-1] if hi_y > lo_y else np.array([ny / 2])
    pts = np.array([(x, y) for y in gy for x in gx])
    if len(pts) > n:
        pts = pts[rng.choice(len(pts), size=n, replace=False)]
    return pts


def read_lattice(image: np.ndarray, material: Material | str, scorer=None,
                 pixel_size_nm: float | None = None, lattice_px: np.ndarray | None = None,
                 cancel=None, progress=None) -> LatticeReading:
    """Read the image's lattice (see module docstring).

    Parameters
    ----------
    image
        2-D image.
    material
        The sample's material.
    scorer
        ``scorer(hypothesis) -> float``: agreement (median NCC) of windows read under a
        hypothesis with their re-simulation (:class:`ResimulationScorer`); default: a
        monolayer re-simulation of the material (for images without a model).
    pixel_size_nm
        A known pixel size (the user's or the file's): only readings within 10 % of it are
        searched, and the orientation/face/distortion still are.
    lattice_px
        The measured lattice, if already known (rows, px), or ``(lattice, peaks)`` as
        :func:`measured_lattice` gives them with ``with_peaks``.
    """
    material = get_material(material)
    img = np.asarray(image, dtype=np.float32)
    peaks = None
    if lattice_px is None:
        lattice_px, _, peaks = measured_lattice(img, with_peaks=True)
    elif isinstance(lattice_px, tuple):  # (lattice, peaks) from measured_lattice
        lattice_px, peaks = lattice_px
    hyps = lattice_hypotheses(lattice_px, material, pixel_size_nm=pixel_size_nm, peaks=peaks,
                              field_px=float(min(img.shape)))
    if not hyps:
        if pixel_size_nm is not None:
            raise UsageError(
                f"no {material.name} lattice with a pixel size near {pixel_size_nm:.5g} nm fits "
                "the image's FFT; check the pixel size and the material")
        raise UsageError(f"the lattice in the image does not match {material.name}'s cell "
                         "(even allowing for scan distortion); check the material")
    if scorer is None:
        scorer = MonolayerScorer(img, material)
    # a quick pass over every reading with two windows, then the full set of windows for the
    # leaders and for the best reading at every other scale (which the margin compares with)
    quick = []
    for i, h in enumerate(hyps):
        if cancel is not None:
            cancel.check()
        quick.append(float(scorer(h, n_windows=2)) if len(hyps) > 4 else np.nan)
        if progress is not None:
            progress(i + 1, len(hyps) + 6, "lattice readings")
    order = np.argsort(-np.nan_to_num(quick, nan=2.0))
    chosen = list(order[:4])
    for i in order:
        if all(abs(hyps[i].pixel_size_nm / hyps[j].pixel_size_nm - 1) > 0.03 for j in chosen):
            chosen.append(i)
    scored = [replace(h, score=q) for h, q in zip(hyps, quick, strict=True)]
    for k, i in enumerate(chosen):
        if cancel is not None:
            cancel.check()
        scored[i] = replace(hyps[i], score=float(scorer(hyps[i])))
        if progress is not None:
            progress(len(hyps) + min(6, k + 1), len(hyps) + 6, "lattice readings")
    full = {int(i) for i in chosen}
    scored = [h if i in full else replace(h, quick=True) for i, h in enumerate(scored)]
    # readings scored with two windows only rank below every fully scored one
    scored.sort(key=lambda h: (h.quick, -np.nan_to_num(h.score, nan=-2)))
    best = scored[0]
    other_scale = [h.score for h in scored[1:]
                   if not h.quick and abs(h.pixel_size_nm / best.pixel_size_nm - 1) > 0.03]
    same_scale = [h.score for h in scored[1:]
                  if not h.quick and abs(h.pixel_size_nm / best.pixel_size_nm - 1) <= 0.03]
    scale_margin = best.score - max(other_scale) if other_scale else 1.0
    frame_margin = best.score - max(same_scale) if same_scale else 1.0
    reason = ""
    from stackview.analysis.trust import min_ncc as task_min_ncc

    min_ncc = task_min_ncc(getattr(scorer, "task", "slip"))
    confidence = float(np.clip((best.score - (min_ncc - 0.2)) / 0.4, 0, 1)
                       * np.clip(scale_margin / (2 * MIN_SCALE_MARGIN), 0, 1))
    if not best.score >= min_ncc:
        reason = (f"no reading of the {material.name} lattice re-simulates the image well "
                  f"(best NCC {best.score:.2f}); check the material, the pixel size and that the "
                  "image shows this stack")
    elif scale_margin < MIN_SCALE_MARGIN:
        alt = next(h for h in scored[1:] if not h.quick
                   and abs(h.pixel_size_nm / best.pixel_size_nm - 1) > 0.03)
        reason = (f"the pixel size is ambiguous: {best.pixel_size_nm:.5g} nm/px (NCC "
                  f"{best.score:.2f}) and {alt.pixel_size_nm:.5g} nm/px (NCC {alt.score:.2f}) "
                  "re-simulate the image almost equally well; give --pixel-size")
    rival = next((h for h in scored[1:] if not h.quick
                  and abs(h.pixel_size_nm / best.pixel_size_nm - 1) <= 0.03), None)
    if not reason and rival is not None and frame_margin < MIN_FRAME_MARGIN \
            and hasattr(scorer, "label_distance"):
        apart = scorer.label_distance(best, rival)
        if apart > scorer.label_tolerance:
            wins, n = scorer.paired(best, rival)
            if wins < 0.2 * n:  # the rival is the better reading, window by window
                i, j = scored.index(best), scored.index(rival)
                scored[i], scored[j] = rival, best
                best, rival, wins = rival, best, n - wins
            if wins < 0.8 * n:
                confidence *= float(np.clip(frame_margin / MIN_FRAME_MARGIN, 0, 1))
                reason = (f"the lattice's orientation or face is ambiguous: two readings "
                          f"re-simulate the image almost equally well (NCC {best.score:.2f} "
                          f"and {rival.score:.2f}, the first better in {wins} of {n} windows) "
                          f"but give labels {apart:.2f} apart")
    drift = None
    if getattr(scorer, "task", None) != "twist":
        # a third of a twisted bilayer's field does not part the two layers' reflections
        # (10° apart they blend in a band's spectrum, and domains of other twist differ
        # between bands), so the change across the image is not read there
        best, drift = measure_drift(img, best, material)
    scored[0] = best
    return LatticeReading(best, scored, confidence, not reason, reason, float(scale_margin),
                          float(frame_margin), drift=drift)


class MonolayerScorer:
    """Agreement of windows read under a hypothesis with a monolayer re-simulation (for a
    monolayer image, or when no model is at hand)."""

    def __init__(self, image, material, optics=None, sampling_A: float = 0.12,
                 patch_px: int = 128, n_windows: int = 4) -> None:
        from stackview.simulation import resolve_optics
        from stackview.simulation.optics import DEFAULT_OPTICS, FALLBACK_OPTICS

        self.image, _ = central_crop(np.asarray(image, dtype=np.float32), SCORING_CROP_PX)
        self.material = get_material(material)
        self.optics = optics or resolve_optics(DEFAULT_OPTICS.get(self.material.name,
                                                                  FALLBACK_OPTICS))
        self.sampling_A, self.patch_px, self.n_windows = sampling_A, patch_px, n_windows
        self._sim = None

    def __call__(self, hyp: LatticeHypothesis, n_windows: int | None = None) -> float:
        from stackview.analysis.resimulate import compare_window, simulate_window
        from stackview.inference.spm import WindowSampler

        if self._sim is None:
            self._sim = simulate_window(self.material, "slip", np.zeros((0, 2)),
                                        self.sampling_A, self.patch_px, self.optics)
        frame = hyp.frame()
        sampler = WindowSampler(self.image, hyp.pixel_size_nm, self.sampling_A, self.patch_px,
                                frame)
        pts = score_positions_px(self.image.shape, sampler.half_extent_px,
                                 n_windows or self.n_windows)
        windows = sampler.extract(pts)
        return float(np.median([compare_window(w, self._sim).ncc for w in windows]))


class ResimulationScorer:
    """Agreement of a model's reading of a few windows with their re-simulation: the windows
    are read under a hypothesis, the model predicts their labels, and the noise-free
    simulation of those labels is registered onto each window (median NCC)."""

    def __init__(self, image, bundle, optics, n_windows: int = 6, undistort: bool = True,
                 pixel_size_nm: float | None = None) -> None:
        from stackview.analysis.trust import Resimulator

        card = bundle.card
        # a few windows are read per hypothesis: a central part of a large image serves, and
        # each hypothesis's sampler then filters that part, not the whole image
        crop, offset = central_crop(np.asarray(image, dtype=np.float32), SCORING_CROP_PX)
        self.image, self.bundle, self.card = crop, bundle, card
        self.n_windows, self.undistort, self.pixel_size_nm = n_windows, undistort, pixel_size_nm
        self.resim = Resimulator(card.material, card.task, card.sampling_A, card.patch_px,
                                 optics)
        self._coeffs: dict = {}
        self.labels: dict = {}
        self.window_nccs: dict = {}

    def sampler(self, hyp: LatticeHypothesis):
        from stackview.inference.spm import WindowSampler

        frame = hyp.frame(self.undistort, self.pixel_size_nm)
        px = self.pixel_size_nm or hyp.pixel_size_nm
        return WindowSampler(self.image, px, self.card.sampling_A, self.card.patch_px, frame,
                             coeffs_cache=self._coeffs)

    def _half(self, sampler) -> float:
        ny, nx = self.image.shape
        half = sampler.half_extent_px
        if 2 * half > min(ny, nx):
            half = sampler.inscribed_half_px
        return half

    def __call__(self, hyp: LatticeHypothesis, n_windows: int | None = None,
                 half_px: float | None = None) -> float:
        import torch

        from stackview.engine.devices import module_device

        sampler = self.sampler(hyp)
        ny, nx = self.image.shape
        half = half_px if half_px is not None else self._half(sampler)
        if 2 * half > min(ny, nx) + 1:
            return -1.0  # at this scale the image is smaller than one window
        pts = score_positions_px(self.image.shape, half, n_windows or self.n_windows)
        windows = sampler.extract(pts)
        with torch.inference_mode():
            x = torch.from_numpy(windows).unsqueeze(1).to(module_device(self.bundle.model))
            preds = self.bundle.model(x).float().cpu().numpy()
        space = self.bundle.label_space
        values = [np.atleast_1d(space.canonical(p)) for p in preds]
        nccs = [self.resim.ncc(w, v) for w, v in zip(windows, values, strict=True)]
        # the reading's labels: the window label closest to all others (a medoid)
        d = [sum(float(np.ravel(space.distance(v, u))[0]) for u in values) for v in values]
        self.labels[hyp.px_per_A] = values[int(np.argmin(d))]
        self.window_nccs[hyp.px_per_A] = np.asarray(nccs)
        return float(np.median(nccs))

    def paired(self, h1: LatticeHypothesis, h2: LatticeHypothesis, n_windows: int = 16
               ) -> tuple[int, int]:
        """In how many of ``n_windows`` common windows h1 re-simulates better than h2 (and
        the number compared): a paired comparison tells two close readings apart where
        their median NCCs over a few windows cannot."""
        half = max(self._half(self.sampler(h1)), self._half(self.sampler(h2)))
        self(h1, n_windows, half)
        self(h2, n_windows, half)
        a, b = self.window_nccs[h1.px_per_A], self.window_nccs[h2.px_per_A]
        return int(np.sum(a > b)), len(a)

    def label_distance(self, h1: LatticeHypothesis, h2: LatticeHypothesis) -> float:
        """Distance between the labels two readings gave (Å or degrees; NaN if unknown)."""
        a, b = self.labels.get(h1.px_per_A), self.labels.get(h2.px_per_A)
        if a is None or b is None:
            return float("nan")
        return float(np.ravel(self.bundle.label_space.distance(a, b))[0])

    @property
    def label_tolerance(self) -> float:
        return 0.5 if self.card.task == "twist" else 0.1

    @property
    def task(self) -> str:
        return self.card.task


def calibrate_by_resimulation(image, material, bundle=None, progress=None, cancel=None):
    """A :class:`stackview.analysis.calibration.Calibration` from :func:`read_lattice`: decided by
    the model's re-simulated readings when a bundle is given, else by a monolayer
    re-simulation of the material (model-free; what the window's Auto button uses)."""
    from stackview.analysis.calibration import Calibration

    img = np.asarray(image, dtype=np.float32)
    scorer = None
    if bundle is not None:
        from stackview.analysis.analyze import optics_for_card

        scorer = ResimulationScorer(img, bundle, optics_for_card(bundle.card))
    reading = read_lattice(img, material, scorer, cancel=cancel, progress=progress)
    name = get_material(material).name
    message = (f"pixel size {reading.pixel_size_nm:.5g} nm/px from the {name} lattice, decided "
               f"by re-simulation among {len(reading.hypotheses)} readings (confidence "
               f"{reading.confidence:.2f})")
    if not reading.reliable:
        message += f"; {reading.reason}"
    return Calibration(reading.pixel_size_nm, "fft", reading.confidence,
                       np.stack([reading.best.a_px, reading.best.b_px]), message)

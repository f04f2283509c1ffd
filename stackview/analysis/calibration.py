"""Pixel-size calibration: from metadata, from the user, or from the lattice in the FFT.

Automatic calibration finds the Bragg peaks of the image's power spectrum, fits the 2-D
reciprocal lattice that explains them, and compares the real-space cell it implies (in pixels)
with the material's cell (in Å). The pixel size is ``sqrt(cell area in Å² / cell area in px²)``;
the confidence reflects how well the measured cell's shape (|b|/|a| and gamma) matches the
material's and how much of the peak power the lattice explains. No Qt here.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stackview.errors import UsageError
from stackview.materials import get_material
from stackview.materials.cell import Material, reduce_basis_2d

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """A pixel size and where it came from.

    Attributes
    ----------
    pixel_size_nm
        Pixel size (nm/px).
    source
        ``"metadata"``, ``"user"`` or ``"fft"``.
    confidence
        0–1 (1 for metadata and user values).
    lattice_px
        For FFT calibration: the measured real-space cell (rows a, b) in pixels.
    message
        One sentence describing the calibration, for the CLI and GUI.
    lattice_pixel_size_nm
        For metadata calibration with a known material: the pixel size the FFT lattice gives,
        when it could be measured confidently (a cross-check of the file's tags).
    """

    pixel_size_nm: float
    source: str
    confidence: float = 1.0
    lattice_px: np.ndarray | None = None
    message: str = ""
    lattice_pixel_size_nm: float | None = None

    @property
    def disagreement(self) -> float | None:
        """Relative difference between the lattice's and the chosen pixel size, if checked."""
        if self.lattice_pixel_size_nm is None:
            return None
        return self.lattice_pixel_size_nm / self.pixel_size_nm - 1.0


#: relative difference between tags and lattice above which the user is warned
TAG_WARNING = 0.03


def calibrate(
    image,
    material: Material | str | None = None,
    pixel_size_nm: float | None = None,
    metadata_pixel_size_nm: float | None = None,
) -> Calibration:
    """Choose the calibration: metadata, else the user's value, else the FFT lattice.

    A user value always wins over metadata (the user knows when a file's tags are wrong).
    """
    if pixel_size_nm is not None:
        if not (np.isfinite(pixel_size_nm) and 1e-4 <= pixel_size_nm <= 10):
            raise UsageError(
                f"the pixel size {pixel_size_nm:g} nm is out of range (0.0001 to 10 nm/px)"
            )
        return Calibration(float(pixel_size_nm), "user", 1.0,
                           message=f"pixel size {pixel_size_nm:g} nm/px given by the user")
    if metadata_pixel_size_nm is not None:
        return _checked_metadata(image, material, float(metadata_pixel_size_nm))
    if material is None:
        raise UsageError(
            "the image has no pixel size; give --pixel-size NM or a material for automatic "
            "calibration"
        )
    return calibrate_from_lattice(image, material)


def _checked_metadata(image, material, pixel_nm: float) -> Calibration:
    """The file's pixel size, cross-checked against the material's lattice when one is known:
    microscope magnification tables are often a few per cent off, which matters for a model
    that reads sub-ångström shifts."""
    message = f"pixel size {pixel_nm:.5g} nm/px from the file"
    if material is None:
        return Calibration(pixel_nm, "metadata", 1.0, message=message)
    try:
        lattice = calibrate_from_lattice(image, material)
    except UsageError:
        return Calibration(pixel_nm, "metadata", 1.0, message=message)
    if lattice.confidence < 0.5:
        return Calibration(pixel_nm, "metadata", 1.0, message=message)
    diff = lattice.pixel_size_nm / pixel_nm - 1.0
    if abs(diff) > TAG_WARNING:
        message += (f"; the {get_material(material).name} lattice in the image gives "
                    f"{lattice.pixel_size_nm:.5g} nm/px ({100 * diff:+.1f} %), so the file's "
                    "calibration may be off: check it or give --pixel-size")
        log.warning(message)
    return Calibration(pixel_nm, "metadata", 1.0, lattice.lattice_px, message,
                       lattice.pixel_size_nm)


def _power_spectrum(image: np.ndarray, size: int) -> np.ndarray:
    from scipy import fft as sfft

    # float32 throughout: on a 2048² crop every full-size float64 temporary costs 32 MB
    ny, nx = np.shape(image)
    n = min(ny, nx)
    img = np.array(image[(ny - n) // 2:(ny - n) // 2 + n, (nx - n) // 2:(nx - n) // 2 + n],
                   dtype=np.float32)
    img -= ndimage.gaussian_filter(img, n / 32)  # remove slow background
    img -= img.mean()
    win = np.hanning(n).astype(np.float32)
    img *= win[:, None]
    img *= win[None, :]
    spec = sfft.fft2(img, s=(size, size), workers=1)
    del img
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    del spec
    return np.fft.fftshift(power)


def find_fft_peaks(image: np.ndarray, max_peaks: int = 40, size: int | None = None):
    """Bragg peaks of the power spectrum: (vectors in cycles/px (k, 2) as (gx, gy), strengths)."""
    vecs, strength, _ = _fft_peaks(image, max_peaks, size)
    return vecs, strength


def _fft_peaks(image: np.ndarray, max_peaks: int = 40, size: int | None = None):
    img = np.asarray(image)
    n = min(img.shape)
    # padding beyond ~2x would widen the peaks past the background filter below
    size = size or max(512, 1 << (n - 1).bit_length())
    ps = _power_spectrum(img, size)
    # the floor keeps a noise-free simulation's window sidelobes (far below any real noise)
    # from counting as peaks
    logp = np.log1p(ps / (np.median(ps) + 1e-4 * ps.max()))
    bg = ndimage.median_filter(logp, size=9) if size <= 1024 else ndimage.uniform_filter(logp, 15)
    hp = logp - bg
    c = size // 2
    yy, xx = np.ogrid[:size, :size]
    r = np.hypot((yy - c).astype(np.float32), (xx - c).astype(np.float32))
    # ignore the lowest frequencies (periods longer than n/2.5 px): small fields hold only a
    # few cells, and their first-order reflections must count
    min_r = size / n * 2.5
    peaks = (hp == ndimage.maximum_filter(hp, size=7)) & (r > min_r) & (r < size * 0.45)
    ys, xs = np.nonzero(peaks)
    strength = hp[ys, xs]
    order = np.argsort(strength)[::-1][: max_peaks * 2]
    ys, xs, strength = ys[order], xs[order], strength[order]
    ring = hp[r > min_r]
    noise = np.median(np.abs(ring - np.median(ring))) * 1.4826
    keep = strength > max(np.median(ring) + 8 * noise, 0.3 * strength[0] if len(strength) else 0)
    ys, xs, strength = ys[keep][:max_peaks], xs[keep][:max_peaks], strength[keep][:max_peaks]
    vecs = []
    for y, x in zip(ys, xs, strict=True):
        y, x = _climb(ps, int(y), int(x))
        vecs.append((x + _log_parabola_offset(ps, y, x, 1) - c,
                     y + _log_parabola_offset(ps, y, x, 0) - c))
    level = np.median(ring)
    return np.array(vecs).reshape(-1, 2) / size, strength, (hp, size, level, noise)


def _climb(ps: np.ndarray, y: int, x: int, steps: int = 4) -> tuple[int, int]:
    """The power spectrum's local maximum reached uphill from (y, x): the peak is found on the
    background-subtracted spectrum, whose maximum sits off the power's for peaks wider than
    the background filter."""
    ny, nx = ps.shape
    for _ in range(steps):
        y0, x0 = max(y - 1, 0), max(x - 1, 0)
        box = ps[y0:min(y + 2, ny), x0:min(x + 2, nx)]
        dy, dx = np.unravel_index(int(np.argmax(box)), box.shape)
        if (y0 + dy, x0 + dx) == (y, x):
            break
        y, x = y0 + int(dy), x0 + int(dx)
    return y, x


def _log_parabola_offset(ps: np.ndarray, y: int, x: int, axis: int) -> float:
    """Sub-pixel offset of a spectrum peak along ``axis`` from the parabola through the log
    power at the maximum and its two neighbours (exact for a Gaussian peak). A fixed 5×5
    centroid was biased towards the integer maximum whenever the peak was wider than the box
    (fields ~200 px across, padded to 512): ~1 % of the lattice, read as scan distortion."""
    n = ps.shape[axis]
    i = y if axis == 0 else x
    if not 0 < i < n - 1:
        return 0.0
    idx = [(y + d, x) if axis == 0 else (y, x + d) for d in (-1, 0, 1)]
    lm, l0, lp = (math.log(max(float(ps[j]), 1e-30)) for j in idx)
    den = lm - 2 * l0 + lp
    if den >= 0:  # not a maximum along this axis (a plateau): no refinement
        return 0.0
    return float(np.clip(0.5 * (lm - lp) / den, -0.5, 0.5))


def _finer_lattice(g1: np.ndarray, g2: np.ndarray, spectrum, peak_radius: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Refine (g1, g2) to a finer reciprocal lattice when weak peaks sit at fractional
    positions: g/k (k = 2, 3), or a finer lattice of index k.

    Projected stacks often have weak fundamental reflections and strong higher orders; the
    strongest peaks then index a reciprocal lattice k times too coarse (a cell k times too
    small). A fractional point counts when the spectrum has a local maximum above the noise
    within one pixel of it.
    """
    hp, size, level, noise = spectrum
    c = size // 2
    local_max = hp == ndimage.maximum_filter(hp, size=5)
    r_max = 0.45 * size
    r_peaks = peak_radius if peak_radius is not None else r_max / size

    def seen(g) -> bool:
        x, y = g * size + c
        ix, iy = int(round(x)), int(round(y))
        if not (2 <= ix < size - 2 and 2 <= iy < size - 2) or np.hypot(x - c, y - c) > r_max:
            return False
        win = np.s_[iy - 1:iy + 2, ix - 1:ix + 2]
        # the absolute floor (log power 0.5 above the local background) keeps the flat, exactly
        # noise-free spectrum of a simulation from counting everywhere as a peak
        return bool(np.any(local_max[win] & (hp[win] > max(level + 8 * noise, 0.5))))

    def window_max(points) -> np.ndarray:
        out = []
        for g in points:
            x, y = np.asarray(g) * size + c
            ix, iy = int(round(x)), int(round(y))
            if 2 <= ix < size - 2 and 2 <= iy < size - 2 and np.hypot(x - c, y - c) <= r_max:
                out.append(hp[iy - 1:iy + 2, ix - 1:ix + 2].max())
        return np.array(out)

    def rotated(points, deg):
        t = math.radians(deg)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        return [rot @ np.asarray(g) for g in points]

    def present(new_points) -> tuple[bool, float]:
        """Whether the points carry peaks: most of them one by one (clear peaks), or, for
        noisy images whose weak reflections do not pass one by one, as a set — their typical
        window maximum above 90 % of the same statistic at the same radii off the lattice."""
        inside = [g for g in new_points if np.hypot(*g) * size < r_max]
        if len(inside) < 4:
            return False, 0.0
        hits = sum(seen(g) for g in inside)
        ratio = hits / len(inside)
        if hits >= 4 and ratio >= 0.5:
            return True, ratio
        # only where the image has detected reflections at all (beyond, noise hides them)
        near = [g for g in inside if np.hypot(*g) <= 1.1 * r_peaks]
        cand = window_max(near)
        if len(cand) < 4:
            return False, ratio
        null = np.concatenate([window_max(rotated(near, d)) for d in (17, 41, 77, 103)])
        margin = float(np.median(cand) - np.percentile(null, 90))
        return margin > 0.5, ratio

    lattice = [(i, j) for i in range(-8, 9) for j in range(-8, 9)]
    for k in (2, 3):
        # all of g/k (a cell k times larger along both axes) ...
        ok, _ = present([(i * g1 + j * g2) / k for i, j in lattice if i % k or j % k])
        if ok:
            return g1 / k, g2 / k
        # ... or one index-k finer lattice, L + Z·v with v = (i·g1 + j·g2)/k: e.g. the
        # sqrt(3) x sqrt(3) relation of a hexagonal cell to its strong second-order spots
        options = [((0, 1), (g1, g2 / k))] + [((1, j), None) for j in range(k)]
        best = None
        for (i, j), basis in options:
            v = (i * g1 + j * g2) / k
            if basis is None:
                basis = (v, g2)
            new = [m * v + p * g1 + q * g2 for m in range(1, k) for p, q in lattice]
            ok, ratio = present(new)
            if ok and (best is None or ratio > best[0]):
                best = (ratio, basis)
        if best is not None:
            return best[1]
    return g1, g2


def _fit_reciprocal_lattice(vecs: np.ndarray, strength: np.ndarray, tol: float = 0.12):
    """Best primitive pair (g1, g2) explaining the peaks: returns (g1, g2, explained fraction).

    A candidate must explain the peak power (peaks at integer combinations) *and* predict few
    missing peaks (lattice points inside the detected radius that have no peak), otherwise
    any tiny pair of vectors would "explain" everything.
    """
    best = None
    n = len(vecs)
    idx = np.argsort(np.linalg.norm(vecs, axis=1))
    cand = vecs[idx[: min(n, 16)]]
    total = strength.sum()
    r_max = np.linalg.norm(vecs, axis=1).max() * 1.02
    for i, j in itertools.combinations(range(len(cand)), 2):
        g1, g2 = cand[i], cand[j]
        det = g1[0] * g2[1] - g1[1] * g2[0]
        if abs(det) < 0.2 * np.linalg.norm(g1) * np.linalg.norm(g2):
            continue
        basis = np.stack([g1, g2])
        coeffs = vecs @ np.linalg.inv(basis)
        resid = np.abs(coeffs - np.round(coeffs)).max(axis=1)
        ok = resid < tol
        explained = strength[ok].sum() / total
        # lattice points predicted inside the detected radius, and how many were seen
        h_max = int(np.ceil(r_max / min(np.linalg.norm(g1), np.linalg.norm(g2)))) + 1
        if h_max > 40:
            continue
        hk = np.array([(h, k) for h in range(-h_max, h_max + 1) for k in range(-h_max, h_max + 1)
                       if (h, k) != (0, 0)])
        pts = hk @ basis
        inside = np.linalg.norm(pts, axis=1) <= r_max
        seen = {tuple(c) for c in np.round(coeffs[ok]).astype(int)}
        predicted = [tuple(c) for c in hk[inside]]
        coverage = sum(c in seen for c in predicted) / max(len(predicted), 1)
        score = explained * coverage
        if best is None or score > best[0] + 1e-9:
            best = (score, basis, coeffs, ok, explained)
    if best is None:
        raise UsageError("no crystal lattice was found in the image's FFT")
    _, basis, coeffs, ok, quality = best
    # least-squares refinement of the basis on all indexed peaks
    h = np.round(coeffs[ok])
    refined, *_ = np.linalg.lstsq(h, vecs[ok], rcond=None)
    return refined[0], refined[1], quality


def _angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))


def _match_material_cell(a_px: np.ndarray, b_px: np.ndarray, material: Material):
    """The supercell of the measured cell whose shape matches the material's cell.

    Projected bilayers often show a pseudo-cell smaller than the true one (weak reflections);
    the true cell is then an integer supercell of it. Among supercells with index 1–4, take the
    one whose |b|/|a| and gamma match the material best (ties: the smallest index).
    Returns (a, b, shape error).
    """
    ratio_mat = material.b_A / material.a_A
    best = None
    rng = range(-2, 3)
    for m11, m12, m21, m22 in itertools.product(rng, rng, rng, rng):
        det = m11 * m22 - m12 * m21
        if det not in (1, 2, 3, 4):
            continue
        u = m11 * a_px + m12 * b_px
        v = m21 * a_px + m22 * b_px
        try:
            u, v = reduce_basis_2d(u, v)
        except UsageError:
            continue
        ratio = np.linalg.norm(v) / np.linalg.norm(u)
        err = abs(ratio - ratio_mat) / ratio_mat + abs(_angle_deg(u, v) - material.gamma_deg) / 60
        key = (round(err, 2), det)
        if best is None or key < best[0]:
            best = (key, u, v, err)
    return best[1], best[2], best[3]


def calibrate_from_lattice(image, material: Material | str) -> Calibration:
    """Pixel size from the lattice peaks in the FFT and the material's lattice constants."""
    material = get_material(material)
    vecs, strength, spectrum = _fft_peaks(image)
    if len(vecs) < 4:
        raise UsageError(
            "automatic calibration failed: the FFT shows no clear lattice peaks; "
            "give the pixel size with --pixel-size NM"
        )
    g1, g2, explained = _fit_reciprocal_lattice(vecs, strength)
    g1, g2 = _finer_lattice(g1, g2, spectrum, float(np.linalg.norm(vecs, axis=1).max()))
    real = np.linalg.inv(np.stack([g1, g2])).T  # rows: real-space vectors in px
    a_px, b_px, shape_err = _match_material_cell(real[0], real[1], material)
    area_px = abs(a_px[0] * b_px[1] - a_px[1] * b_px[0])
    pixel_A = math.sqrt(material.area_A2 / area_px)
    ratio_meas = np.linalg.norm(b_px) / np.linalg.norm(a_px)
    gamma_meas = _angle_deg(a_px, b_px)
    confidence = float(np.clip(explained * (1 - 5 * shape_err), 0.0, 1.0))
    pixel_nm = pixel_A / 10
    msg = (f"pixel size {pixel_nm:.5g} nm/px from the {material.name} lattice in the FFT "
           f"(confidence {confidence:.2f}; measured |b|/|a| {ratio_meas:.3f}, gamma "
           f"{gamma_meas:.1f}°)")
    if confidence < 0.5:
        msg += "; check it or give --pixel-size"
    log.info(msg)
    return Calibration(pixel_nm, "fft", confidence, np.stack([a_px, b_px]), msg)

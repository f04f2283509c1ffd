"""Whether a reading can be trusted: every window against the re-simulation of its labels.

A network always prints a number; whether the stack it names explains the window is a
separate, model-free question. :class:`Resimulator` simulates the labels a window was read as
(noise-free, the model's imaging conditions; cached by label, since neighbouring windows mostly
share one), registers the simulation onto the window and returns their NCC;
:func:`score_windows` does it for every window of a map; :func:`judge` turns the lattice
reading and the window scores into the ``reliable`` flag and its one-sentence reason.
No Qt here.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from scipy import ndimage

from stackview.engine.jobs import CancelToken, null_progress

#: re-simulation NCC (a lattice reading's best, a map's median window) below which a reading
#: is not trusted; twist windows sample the lattice near Nyquist and the moiré is fitted only
#: approximately, so right twist readings of noisy images score 0.35-0.5 in the corpus
MIN_NCC = {"slip": 0.5, "twist": 0.3}
#: a window below this NCC does not look like the stack it was read as
POOR_WINDOW_NCC = 0.3
#: fraction of poor windows above which a map is not trusted
MAX_POOR_FRACTION = 0.5


class Resimulator:
    """NCC of windows against noise-free simulations of labels (cached by rounded label)."""

    def __init__(self, material, task: str, sampling_A: float, patch_px: int, optics,
                 slip_step_A: float = 0.05, theta_step_deg: float = 0.2,
                 max_cache: int = 512) -> None:
        self.material, self.task = material, task
        self.sampling_A, self.patch_px, self.optics = sampling_A, int(patch_px), optics
        self.step = theta_step_deg if task == "twist" else slip_step_A
        self.max_cache = max_cache
        self._cache: dict[tuple, np.ndarray] = {}
        from stackview.core.stacking import has_families

        self.families = task == "slip" and has_families(material)
        #: per rounded label: the orbit members that explained windows best, best first
        self._good: dict[tuple, list[int]] = {}
        self._best_seen: dict[tuple, float] = {}

    def simulation(self, values) -> np.ndarray:
        from stackview.analysis.resimulate import simulate_window

        v = np.atleast_1d(np.asarray(values, dtype=float)).copy()
        if len(v) == 3:
            v[2] = float(v[2] >= 0.5)  # the family, not its probability
        key = tuple(np.round(v / self.step).astype(int))
        sim = self._cache.get(key)
        if sim is None:
            if len(self._cache) >= self.max_cache:
                self._cache.pop(next(iter(self._cache)))
            sim = simulate_window(self.material, self.task, np.round(v / self.step) * self.step,
                                  self.sampling_A, self.patch_px, self.optics)
            self._cache[key] = sim
        return sim

    def layer_images(self, theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free images of a twisted stack's two layers alone (cached by rounded θ).

        Incoherent ADF imaging is linear in the atoms, so the stack's image is the sum of its
        layers' images; fitting each layer's position separately finds the moiré's position,
        which no translation of the whole simulation can."""
        from stackview.analysis.resimulate import atoms_for_labels
        from stackview.simulation import simulate

        key = ("layers", int(np.round(theta_deg / self.step)))
        pair = self._cache.get(key)
        if pair is None:
            if len(self._cache) >= self.max_cache:
                self._cache.pop(next(iter(self._cache)))
            fov = (self.patch_px * self.sampling_A,) * 2
            atoms = atoms_for_labels(self.material, "twist", [key[1] * self.step], fov,
                                     margin_A=12.0)
            sim_log = logging.getLogger("stackview.simulation.api")
            level = sim_log.level
            # a layer alone may leave a row's gap at an edge, which the simulator warns about;
            # the edges are left out of every comparison (the core), so the user is not told
            sim_log.setLevel(logging.ERROR)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pair = tuple(simulate(atoms[atoms.get_tags() == k], self.optics,
                                          sampling_A=self.sampling_A, fov_A=fov).image
                                 for k in (0, 1))
            finally:
                sim_log.setLevel(level)
            self._cache[key] = pair
        return pair

    def ncc(self, window: np.ndarray, values) -> float:
        """Agreement of ``window`` with the simulation of ``values`` (registered; for twist
        the better of θ and −θ, which a window in the lattice frame of either layer shows,
        with the two layers placed separately: the moiré's position)."""
        from stackview.analysis.resimulate import compare_window

        v = np.atleast_1d(np.asarray(values, dtype=float))
        if not np.all(np.isfinite(v)):
            return float("nan")
        if self.task == "twist":
            return max(self._twist_ncc(window, s * float(v[0])) for s in (1, -1))
        if self.families and len(v) <= 3:
            return self._orbit_ncc(window, v)
        return compare_window(window, self.simulation(v)).ncc

    def orbit(self, values) -> list[tuple[np.ndarray, bool]]:
        """The labels (and half turns) whose images are the views of one stacking of a
        hexagonal bilayer in a lattice frame: a window of the canonical label may show any of
        them (the frame leaves the 6-fold rotation and which way the layers point open)."""
        from stackview.core.labels import SlipLabels

        v = np.asarray(values, dtype=float)
        anti = len(v) == 3 and v[2] >= 0.5
        if "_ops" not in self.__dict__:  # once per map: the operations cost a symmetry search
            self._ops = SlipLabels(self.material, family="antiparallel").label_ops()
        ops = self._ops  # P alone: −D is the same image (a layer swap)
        turns = (False,) if anti else (False, True)  # antiparallel images are centrosymmetric
        out = []
        for q in ops:
            d = v[:2] @ q
            out += [(np.concatenate([d, v[2:]]), t) for t in turns]
        return out

    def _orbit_ncc(self, window: np.ndarray, v: np.ndarray) -> float:
        """The best NCC over the label's orbit, trying first the members that explained windows
        of this label before (neighbouring windows mostly share one)."""
        from stackview.analysis.resimulate import compare_window

        # the family by its threshold, not rounded with the slip: a parallel label's orbit has
        # twice the members of an antiparallel one (the half turns), so the two may not share
        # remembered members
        anti = bool(len(v) == 3 and v[2] >= 0.5)
        key = (*np.round(v[:2] / self.step).astype(int).tolist(), anti)
        members = self.orbit(v)
        scores: dict[int, float] = {}

        def score(i: int) -> float:
            vals, turned = members[i]
            sim = self.simulation(vals)
            scores[i] = compare_window(window, sim[::-1, ::-1] if turned else sim).ncc
            return scores[i]

        for i in self._good.get(key, [])[:2]:
            score(i)
        if not scores or max(scores.values()) < self._best_seen.get(key, 1.0) - 0.15:
            for i in range(len(members)):
                if i not in scores:
                    score(i)
        ranked = sorted(scores, key=lambda i: -scores[i])
        self._good[key] = ranked[:2] + [i for i in self._good.get(key, []) if i not in ranked[:2]]
        best = scores[ranked[0]]
        self._best_seen[key] = max(self._best_seen.get(key, -1.0), best)
        return best

    def _twist_ncc(self, window: np.ndarray, theta_deg: float) -> float:
        from stackview.analysis.compare import ncc

        w = np.asarray(window, dtype=float)
        layers = self.layer_images(theta_deg)
        b = max(2, w.shape[0] // 8)
        core = (slice(b, -b), slice(b, -b))

        def fit(parts):
            # least-squares weights of the two layers and an offset
            design = np.column_stack([p[core].ravel() for p in parts] + [np.ones(w[core].size)])
            coef, *_ = np.linalg.lstsq(design, w[core].ravel(), rcond=None)
            return coef, (design @ coef).reshape(w[core].shape)

        parts = [_placed(w, layer) for layer in layers]
        # at small twists the two lattices' reflections overlap in a window's spectrum: place
        # each layer again on what the other one leaves of the window
        for _ in range(2):
            coef, _ = fit(parts)
            for k in (0, 1):
                rest = w - coef[1 - k] * parts[1 - k]
                parts[k] = _placed(rest, layers[k])
        _, model = fit(parts)
        return ncc(w[core], model)


def _placed(window: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``layer`` translated onto where its lattice sits in ``window``: the peak of the plain
    (not phase-normalised) cross-correlation, which only the layer's own reflections carry,
    refined by a parabola through the peak's neighbours."""
    ny, nx = window.shape
    han = np.outer(np.hanning(ny), np.hanning(nx))
    fw = np.fft.fft2((window - window.mean()) * han)
    fl = np.fft.fft2((layer - layer.mean()) * han)
    corr = np.fft.ifft2(fw * np.conj(fl)).real
    iy, ix = np.unravel_index(np.argmax(corr), corr.shape)

    def sub(c_m, c_0, c_p):
        den = c_m - 2 * c_0 + c_p
        return 0.0 if den == 0 else 0.5 * (c_m - c_p) / den

    dy = iy + sub(corr[iy - 1, ix], corr[iy, ix], corr[(iy + 1) % ny, ix])
    dx = ix + sub(corr[iy, ix - 1], corr[iy, ix], corr[iy, (ix + 1) % nx])
    dy = dy - ny if dy > ny / 2 else dy
    dx = dx - nx if dx > nx / 2 else dx
    return ndimage.shift(np.asarray(layer, dtype=float), (dy, dx), order=3, mode="grid-wrap")


def score_windows(image, pixel_size_nm: float, smap, sampler, resimulator: Resimulator,
                  progress=null_progress, cancel: CancelToken | None = None) -> None:
    """Fill ``smap.ncc_points`` and ``smap.ncc`` with every window's re-simulation NCC."""
    cancel = cancel or CancelToken()
    pts = smap.points
    n_lab = len(smap.names)
    centres_px = pts[:, :2] / pixel_size_nm
    out = np.full(len(pts), np.nan)
    chosen = _checked_windows(smap)
    chunk = 32
    for s in range(0, len(chosen), chunk):
        cancel.check()
        part = chosen[s:s + chunk]
        windows = sampler.extract(centres_px[part])
        for k, w in zip(part, windows, strict=True):
            out[k] = resimulator.ncc(w, pts[k, 2:2 + n_lab])
        progress(min(s + chunk, len(chosen)), len(chosen), "windows checked")
    if len(chosen) < len(pts):
        # windows between the checked ones share most of their pixels with the nearest one
        ny, nx = smap.values.shape[:2]
        iy, ix = np.divmod(np.arange(len(pts)), nx)
        k = smap.extra["ncc_check_every"]
        near = np.minimum(np.round(iy / k) * k, (ny - 1) // k * k).astype(int) * nx + \
            np.minimum(np.round(ix / k) * k, (nx - 1) // k * k).astype(int)
        out = out[near]
    smap.ncc_points = out
    grid = np.full(smap.values.shape[:2], np.nan)
    tol = 1e-6 + 1e-3 * smap.stride_nm
    ix = np.searchsorted(smap.x_nm, pts[:, 0] - tol)
    iy = np.searchsorted(smap.y_nm, pts[:, 1] - tol)
    ok = ((ix < len(smap.x_nm)) & (iy < len(smap.y_nm)))
    ix, iy = np.minimum(ix, len(smap.x_nm) - 1), np.minimum(iy, len(smap.y_nm) - 1)
    ok &= (np.abs(smap.x_nm[ix] - pts[:, 0]) < tol) & (np.abs(smap.y_nm[iy] - pts[:, 1]) < tol)
    # later rows (refinement windows) overwrite the coarse window at the same cell
    grid[iy[ok], ix[ok]] = out[ok]
    if smap.mode == "refine" and np.isnan(grid).any():
        # fine cells not evaluated carry the nearest coarse window's value, found axis by axis
        # on the coarse grid as refine_map does for the labels
        coarse = pts[:, -1] == 0
        cx, cy = np.unique(pts[coarse, 0]), np.unique(pts[coarse, 1])
        cgrid = np.full((len(cy), len(cx)), np.nan)
        cgrid[np.searchsorted(cy, pts[coarse, 1]), np.searchsorted(cx, pts[coarse, 0])] = \
            out[coarse]
        jy = np.abs(smap.y_nm[:, None] - cy[None, :]).argmin(axis=1)
        jx = np.abs(smap.x_nm[:, None] - cx[None, :]).argmin(axis=1)
        missing = np.isnan(grid)
        grid[missing] = cgrid[jy][:, jx][missing]
    smap.ncc = grid


#: at finer strides than this fraction of the window, the re-simulation check reads every
#: k-th window along each axis (neighbours at a fine stride share most of their pixels)
CHECK_SPACING_WINDOWS = 0.25


def _checked_windows(smap) -> np.ndarray:
    """Rows of ``smap.points`` the re-simulation check reads: all of them, except in a regular
    map finer than a quarter window, where every k-th window along each axis is read (k the
    quarter window in strides) and the others take the nearest checked one's NCC; k goes to
    ``smap.extra["ncc_check_every"]``."""
    n = len(smap.points)
    if smap.mode not in ("window", "dense"):
        return np.arange(n)
    k = int(math.floor(CHECK_SPACING_WINDOWS * smap.window_nm / smap.stride_nm + 1e-9))
    if k < 2:
        return np.arange(n)
    ny, nx = smap.values.shape[:2]
    smap.extra["ncc_check_every"] = k
    rows = np.arange(0, ny, k)
    cols = np.arange(0, nx, k)
    return (rows[:, None] * nx + cols[None, :]).ravel()


def min_ncc(task: str) -> float:
    """The NCC a reading of this task (``slip`` or ``twist``) must reach to be trusted."""
    return MIN_NCC.get(task, MIN_NCC["slip"])


def judge(smap, lattice_reading=None, task: str = "slip") -> tuple[bool, str]:
    """The ``reliable`` flag and, when False, why (one sentence)."""
    if lattice_reading is not None and not lattice_reading.reliable:
        return False, lattice_reading.reason
    if smap.ncc_points is None:
        return True, ""
    scores = smap.ncc_points[np.isfinite(smap.ncc_points)]
    if not len(scores):
        return False, "no window could be compared with a re-simulation"
    med = float(np.median(scores))
    poor = float(np.mean(scores < POOR_WINDOW_NCC))
    if med < min_ncc(task):
        return False, (f"the windows match the re-simulated stacks poorly (median NCC "
                       f"{med:.2f}): check the material, the pixel size and that the image "
                       "shows this stack; the maps may be meaningless")
    if poor > MAX_POOR_FRACTION:
        return False, (f"{100 * poor:.0f} % of the windows do not match their re-simulation "
                       f"(NCC < {POOR_WINDOW_NCC}): the image may hold another material, "
                       "vacuum or heavy contamination")
    return True, ""


def poor_fraction(smap) -> float:
    if smap.ncc_points is None:
        return math.nan
    s = smap.ncc_points[np.isfinite(smap.ncc_points)]
    return float(np.mean(s < POOR_WINDOW_NCC)) if len(s) else math.nan

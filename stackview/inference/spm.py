"""Strided pattern matching (SPM): slip/twist maps of whole images with a model bundle.

The image is resampled once to the model's sampling; windows of the model's patch size are cut
at a regular stride and predicted in batches. Three modes:

* ``window`` — every window through the network (with a few label-preserving test-time views
  for a per-window uncertainty);
* ``refine`` — the paper's two-level interface search: a coarse stride everywhere, then a fine
  stride only around coarse cells whose neighbours differ by more than a threshold;
* ``dense`` — fully convolutional (:mod:`stackview.inference.dense`): the trunk runs once per
  sub-stride offset over the image and each window's features are pooled from the shared
  feature map, so overlapping windows do not recompute their shared convolutions. For models
  trained with context it equals the window mode (the windows are read with their margin of
  image around them).

Coordinates are in nm from the image's top-left pixel corner, x to the right (columns) and y
down (rows). Torch is imported inside functions; no Qt.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError

log = logging.getLogger(__name__)

# image samples interpolated at once: their float64 coordinates and spline weights cost
# ~60 bytes each, so 2^18 of them hold ~16 MB whatever the image or tile size
SAMPLE_POINTS = 1 << 18


@dataclass
class SpmMap:
    """Result of an SPM analysis.

    Attributes
    ----------
    x_nm, y_nm
        Window-centre coordinates of the grid (nm), shapes (nx,) and (ny,).
    values
        Canonical labels per window, shape (ny, nx, n) (NaN where not evaluated).
    uncertainty
        Per-window uncertainty (Å or degrees), shape (ny, nx).
    names
        Label names (``Da_A``, ``Db_A``, … or ``theta_deg``).
    window_nm, stride_nm
        Window side and the stride actually used (nm).
    points
        Every evaluated window as rows ``(x_nm, y_nm, *values, uncertainty, level)`` (level 0
        for the coarse/regular grid, 1 for refinement windows).
    mode
        ``window``, ``refine`` or ``dense``.
    ncc, ncc_points
        Re-simulation agreement: the normalised cross-correlation of each window with the
        noise-free simulation of the labels read in it, on the grid (ny, nx) and per row of
        ``points``; None until :func:`stackview.analysis.trust.score_windows` has run, NaN
        where a window was not scored.
    bounds
        For twist maps, the windows whose reading is a bound ("θ < 3°") rather than an angle
        (:class:`stackview.analysis.twist_bounds.TwistBounds`); None until applied.
    stacking
        For models that read the stacking family: per row of ``points`` the family, the
        stacking class and the distance to it (Å) (:func:`stackview.analysis.fields.
        stacking_columns`); None otherwise.
    """

    x_nm: np.ndarray
    y_nm: np.ndarray
    values: np.ndarray
    uncertainty: np.ndarray
    names: tuple[str, ...]
    window_nm: float
    stride_nm: float
    mode: str
    points: np.ndarray
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    ncc: np.ndarray | None = None
    ncc_points: np.ndarray | None = None
    bounds: object | None = None
    stacking: tuple | None = None

    @property
    def n_patches(self) -> int:
        return int(len(self.points))

    @property
    def patches_per_second(self) -> float:
        return self.n_patches / self.seconds if self.seconds > 0 else float("nan")


def resample_to_model(image: np.ndarray, pixel_size_nm: float, sampling_A: float) -> np.ndarray:
    """The image resampled to ``sampling_A`` Å/px (cubic spline, area-correct grid)."""
    zoom = pixel_size_nm * 10.0 / sampling_A
    img = np.asarray(image, dtype=np.float32)
    if math.isclose(zoom, 1.0, rel_tol=1e-4):
        return img
    if zoom < 1:  # anti-alias before shrinking
        img = ndimage.gaussian_filter(img, sigma=0.5 / zoom * 0.8)
    return ndimage.zoom(img, zoom, order=3, mode="reflect", grid_mode=True).astype(np.float32)


class WindowSampler:
    """Cut model-ready windows (the model's sampling, optionally in a rotated/mirrored or
    affine-corrected frame) centred on given points of the original image.

    Without a frame the image is resampled once and windows are slices; with a frame
    (:class:`stackview.core.frame.Frame`) each window is interpolated (cubic spline) on
    its rotated grid — through the frame's full affine map when it has one, which undoes scan
    distortion — so maps stay on the original image's regular grid. Where a window reaches
    beyond the image, its pixels are taken one lattice translation inside (the frame's a, b),
    which continues a crystal seamlessly where mirroring would fold it.
    """

    def __init__(self, image: np.ndarray, pixel_size_nm: float, sampling_A: float,
                 patch_px: int, frame=None, coeffs_cache: dict | None = None,
                 context_px: int = 0) -> None:
        """``coeffs_cache``: a dict shared by samplers of one image, keyed by the anti-alias
        blur, so that many frames of the same image filter it once. ``context_px``: the
        windows come with this margin of image on every side (models that read context);
        where it is beyond the image it is filled as the rest of a window is."""
        self.patch_px = int(patch_px)
        self.context_px = int(context_px)
        self.tile_px = self.patch_px + 2 * self.context_px
        self.scale = sampling_A / (pixel_size_nm * 10.0)  # original px per model px
        self.frame = frame
        img = np.asarray(image, dtype=np.float32)
        self.shape = img.shape
        affine = getattr(frame, "px_per_A", None) if frame is not None else None
        identity = frame is None or (affine is None and not frame.mirror
                                     and abs(frame.rotation_deg) < 1e-9)
        if identity:
            self.frame = None
            self.resampled = resample_to_model(img, pixel_size_nm, sampling_A)
            m = self.context_px
            # no lattice known to continue the crystal with: the margin mirrors the image
            self.padded = (np.pad(self.resampled, m, mode="reflect") if m else self.resampled)
            self.reach = 1.0
        else:
            if affine is not None:
                to_px = np.asarray(affine, dtype=float) * sampling_A  # model px -> original px
            else:
                to_px = np.linalg.inv(frame.matrix()) * self.scale
            sv = np.linalg.svd(to_px, compute_uv=False)
            self.scale = float(math.sqrt(abs(np.linalg.det(to_px))))
            self.reach = float(sv[0]) / self.scale  # longest stretch relative to the mean
            sigma = round(0.8 * 0.5 * self.scale, 2) if self.scale > 1 else 0.0
            cached = coeffs_cache.get(sigma) if coeffs_cache is not None else None
            if cached is None:
                if sigma > 0:
                    img = ndimage.gaussian_filter(img, sigma=sigma)
                cached = ndimage.spline_filter(img, order=3, output=np.float32)
                if coeffs_cache is not None:
                    coeffs_cache[sigma] = cached
            self.coeffs = cached
            del img
            self.to_px = to_px
            self._grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            h = (self.patch_px - 1) / 2.0
            corners = np.array([[-h, h, h, -h], [-h, -h, h, h]])
            self.window_reach_px = np.abs(to_px @ corners).max(axis=1)  # (x, y)
            gradient = getattr(frame, "px_per_A_per_row", None)
            self.gradient = (None if gradient is None or affine is None
                             else np.asarray(gradient, dtype=float) * sampling_A)
            self.row0 = float(getattr(frame, "row0_px", 0.0))
            self.cell_px = np.column_stack([frame.a_px, frame.b_px]).astype(float)

    @classmethod
    def for_model(cls, image: np.ndarray, pixel_size_nm: float, card, frame=None,
                  coeffs_cache: dict | None = None) -> WindowSampler:
        """The sampler of a model's windows (its sampling, window and context margin)."""
        return cls(image, pixel_size_nm, card.sampling_A, card.patch_px, frame, coeffs_cache,
                   context_px=card.context_px)

    @property
    def half_extent_px(self) -> float:
        """Half-size (original px) of the region a window covers, along x and y (the window
        itself, without its context margin)."""
        half = self.patch_px * self.scale / 2.0
        if self.frame is None:
            return half
        return float(self.window_reach_px.max()) + 0.5

    @property
    def inscribed_half_px(self) -> float:
        """Half the window's own side (original px): a window centred this far from every
        edge has its inscribed circle inside the image (corners filled by lattice
        translation)."""
        return self.patch_px * self.scale * self.reach / 2.0

    def _fold_inside(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move sample points outside the image by whole lattice vectors to inside it."""
        ny, nx = self.shape
        out = (xs < 0) | (xs > nx - 1) | (ys < 0) | (ys > ny - 1)
        if not out.any():
            return xs, ys
        cell = self.cell_px
        inv = np.linalg.inv(cell)
        diag = float(np.linalg.norm(cell[:, 0]) + np.linalg.norm(cell[:, 1]))
        mx, my = min(diag, (nx - 1) / 2), min(diag, (ny - 1) / 2)
        px, py = xs[out], ys[out]
        for _ in range(3):
            qx, qy = np.clip(px, mx, nx - 1 - mx), np.clip(py, my, ny - 1 - my)
            n = np.round(inv @ np.vstack([px - qx, py - qy]))
            t = cell @ n
            px, py = px - t[0], py - t[1]
        xs, ys = xs.copy(), ys.copy()
        xs[out], ys[out] = px, py
        return xs, ys

    def window_origin(self, x_px: float, y_px: float) -> tuple[int, int]:
        """Without a frame: the top-left pixel (x0, y0) of the window centred on an original
        pixel position, in the resampled image."""
        P = self.patch_px
        x0 = int(round(x_px / self.scale - P / 2.0))
        y0 = int(round(y_px / self.scale - P / 2.0))
        x0 = min(max(x0, 0), self.resampled.shape[1] - P)
        y0 = min(max(y0, 0), self.resampled.shape[0] - P)
        return x0, y0

    def _grid(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(model-px grid (2, S*S) centred on 0, its offsets in original px) of a square."""
        if size not in self._grids:
            u = np.arange(size) - (size - 1) / 2.0
            uu, vv = np.meshgrid(u, u, indexing="xy")  # x along columns, y along rows
            grid = np.vstack([uu.ravel(), vv.ravel()])
            self._grids[size] = (grid, self.to_px @ grid)
        return self._grids[size]

    def extract(self, centers_xy_px: np.ndarray, context: bool = False) -> np.ndarray:
        """Windows (N, P, P) centred on ``centers_xy_px`` (N, 2) in original pixels (x, y);
        with ``context`` the model's inputs (N, T, T): each window with its context margin."""
        c = np.asarray(centers_xy_px, dtype=float).reshape(-1, 2)
        P = self.tile_px if context else self.patch_px
        if self.frame is None:
            out = np.empty((len(c), P, P), np.float32)
            inset = 0 if context else self.context_px
            for i, (x, y) in enumerate(c):
                x0, y0 = self.window_origin(x, y)  # in the padded image: the tile's origin
                out[i] = self.padded[y0 + inset:y0 + inset + P, x0 + inset:x0 + inset + P]
            return out
        # a batch of 64 tiles of 256² px (context) would hold ~250 MB of sample coordinates
        # at once: sample SAMPLE_POINTS at a time
        chunk = max(1, SAMPLE_POINTS // (P * P))
        if len(c) > chunk:
            return np.concatenate([self.extract(c[i:i + chunk], context)
                                   for i in range(0, len(c), chunk)])
        # pixel (i, j) of the original image is centred at (j + 0.5, i + 0.5)
        grid, offsets = self._grid(P)
        if self.gradient is None:
            off_x, off_y = offsets[0][None, :], offsets[1][None, :]
        else:  # the affine map at each window's row (a drift that changes during the scan)
            mats = self.to_px[None] + (c[:, 1] - self.row0)[:, None, None] * self.gradient[None]
            off = mats @ grid  # (N, 2, P*P)
            off_x, off_y = off[:, 0], off[:, 1]
        xs = c[:, :1] + off_x - 0.5
        ys = c[:, 1:] + off_y - 0.5
        xs, ys = self._fold_inside(xs.ravel(), ys.ravel())
        vals = ndimage.map_coordinates(self.coeffs, [ys, xs], order=3,
                                       prefilter=False, mode="mirror")
        return vals.reshape(len(c), P, P).astype(np.float32)


def window_centres_nm(shape_px, pixel_size_nm: float, sampler: WindowSampler,
                      stride_nm: float, roi_nm=None) -> tuple[np.ndarray, np.ndarray]:
    """Regular grid of window centres (nm) whose windows lie inside the image (and ROI)."""
    ny, nx = shape_px
    half_nm = sampler.half_extent_px * pixel_size_nm
    x_lo, y_lo, x_hi, y_hi = 0.0, 0.0, nx * pixel_size_nm, ny * pixel_size_nm
    if roi_nm is not None:
        rx0, ry0, rx1, ry1 = (float(v) for v in roi_nm)
        if not (rx1 > rx0 and ry1 > ry0):
            raise UsageError("the region of interest must have x1 > x0 and y1 > y0 (nm)")
        x_lo, y_lo = max(x_lo, rx0), max(y_lo, ry0)
        x_hi, y_hi = min(x_hi, rx1), min(y_hi, ry1)

    inscribed = (getattr(sampler, "inscribed_half_px", half_nm / pixel_size_nm)
                 * pixel_size_nm)

    def axis(lo, hi):
        # windows whose rotated corners would leave the image are allowed only where no
        # window fits otherwise (the image is about one window wide): the sampler fills the
        # corners by lattice translation
        half = half_nm if (hi - lo) - 2 * half_nm >= -1e-9 else inscribed
        span = (hi - lo) - 2 * half
        if span < -1e-9:
            return np.zeros(0)
        n = int(math.floor(max(span, 0.0) / stride_nm + 1e-9)) + 1
        first = lo + half + (span - (n - 1) * stride_nm) / 2.0
        return first + stride_nm * np.arange(n)

    return axis(x_lo, x_hi), axis(y_lo, y_hi)


class _Runner:
    """Batched forward passes of a bundle with a few test-time views per window."""

    def __init__(self, bundle, n_views: int, batch_size: int) -> None:
        from stackview.inference.predict import tta_views

        self.bundle = bundle
        self.space = bundle.label_space
        views = tta_views(bundle.card, n_shifts=2)
        keep = [v for v in views if v[0] == "identity" or v[0].startswith(("shift", "rot180"))]
        self.views = keep[: max(1, n_views)]
        self.batch_size = batch_size

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from stackview.engine.devices import module_device
        from stackview.inference.predict import aggregate

        stack = np.stack([fn(w) for w in windows for _, fn, _ in self.views]).astype(np.float32)
        dev = module_device(self.bundle.model)
        out = []
        with torch.inference_mode():
            for s in range(0, len(stack), self.batch_size):
                x = torch.from_numpy(stack[s:s + self.batch_size]).unsqueeze(1).to(dev)
                out.append(self.bundle.model(x).float().cpu().numpy())
        raw = np.concatenate(out).astype(np.float64).reshape(len(windows), len(self.views), -1)
        values = np.empty((len(windows), raw.shape[-1]))
        unc = np.zeros(len(windows))
        for i, per in enumerate(raw):
            if len(self.views) == 1:
                values[i] = np.atleast_1d(self.space.canonical(per[0]))
            else:
                values[i], _, unc[i], _ = aggregate(per, self.space)
        return values, unc


def _check_inputs(image, pixel_size_nm: float, bundle, window_nm: float | None,
                  stride_nm: float) -> float:
    if np.asarray(image).ndim != 2:
        raise UsageError("SPM needs a 2-D image")
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise UsageError(f"the pixel size {pixel_size_nm} nm must be a positive number")
    card = bundle.card
    if window_nm is not None and not math.isclose(window_nm, card.patch_nm, rel_tol=0.05):
        raise UsageError(
            f"model {card.name} analyses {card.patch_nm:.2f} nm windows; leave out --window or "
            f"give {card.patch_nm:.2f}"
        )
    if not (0 < stride_nm <= 50):
        raise UsageError(f"the stride {stride_nm:g} nm must be between 0 and 50 nm")
    h_nm = min(np.asarray(image).shape) * pixel_size_nm
    if h_nm < card.patch_nm:
        raise UsageError(
            f"the image ({h_nm:.2f} nm) is smaller than the model's {card.patch_nm:.2f} nm window; "
            "check the pixel size"
        )
    return card.patch_nm


def spm_map(
    image: np.ndarray,
    pixel_size_nm: float,
    bundle,
    stride_nm: float = 0.5,
    window_nm: float | None = None,
    roi_nm: tuple[float, float, float, float] | None = None,
    frame=None,
    n_views: int = 1,
    batch_size: int = 64,
    progress=null_progress,
    cancel: CancelToken | None = None,
    sampler: WindowSampler | None = None,
) -> SpmMap:
    """Window-by-window SPM map of ``image`` (see module docstring).

    Parameters
    ----------
    image
        2-D image.
    pixel_size_nm
        Its calibration (nm/px).
    bundle
        Loaded :class:`stackview.models.Bundle`.
    stride_nm
        Distance between window centres (nm); without a frame it is rounded to whole pixels at
        the model's sampling.
    window_nm
        Must equal the model's window (default: the model's).
    roi_nm
        Optional region ``(x0, y0, x1, y1)`` in nm; only windows inside it are evaluated.
    frame
        :class:`stackview.core.frame.Frame` for models trained on aligned lattices.
    n_views
        Test-time views per window for the uncertainty (1: no uncertainty, fastest).
    sampler
        A :class:`WindowSampler` of this image, pixel size and frame already made (it holds
        the image's spline coefficients: one per analysis, not one per pass).
    """
    cancel = cancel or CancelToken()
    _check_inputs(image, pixel_size_nm, bundle, window_nm, stride_nm)
    start = time.perf_counter()
    card = bundle.card
    sampler = sampler or WindowSampler.for_model(image, pixel_size_nm, card, frame)
    if sampler.frame is None:  # whole model pixels keep windows on exact slices
        stride_nm = max(1, round(stride_nm * 10.0 / card.sampling_A)) * card.sampling_A / 10.0
    x_nm, y_nm = window_centres_nm(np.shape(image), pixel_size_nm, sampler, stride_nm, roi_nm)
    if len(x_nm) == 0 or len(y_nm) == 0:
        raise UsageError("no analysis window fits inside the image or region of interest")
    runner = _Runner(bundle, n_views, batch_size)
    yy, xx = np.meshgrid(y_nm, x_nm, indexing="ij")
    centres = np.column_stack([xx.ravel(), yy.ravel()])
    values, unc = _evaluate(sampler, centres / pixel_size_nm, runner, progress, cancel)
    n_out = values.shape[-1]
    values = values.reshape(len(y_nm), len(x_nm), n_out)
    unc = unc.reshape(len(y_nm), len(x_nm))
    points = np.column_stack([centres, values.reshape(-1, n_out), unc.ravel(),
                              np.zeros(len(centres))])
    names = tuple(card.label_convention()["names"])
    return SpmMap(x_nm, y_nm, values, unc, names, card.patch_nm, stride_nm, "window",
                  points, time.perf_counter() - start)


def _evaluate(sampler: WindowSampler, centres_px, runner, progress, cancel):
    total = len(centres_px)
    out_v, out_u = [], []
    chunk = max(1, runner.batch_size // max(1, len(runner.views)))
    for s in range(0, total, chunk):
        cancel.check()
        v, u = runner(sampler.extract(centres_px[s:s + chunk], context=True))
        out_v.append(v)
        out_u.append(u)
        progress(min(s + chunk, total), total, "windows")
    return np.concatenate(out_v), np.concatenate(out_u)


def neighbour_jumps(smap: SpmMap, space) -> np.ndarray:
    """Largest symmetry-aware difference between each grid cell and its 4 neighbours."""
    v = smap.values
    ny, nx, n = v.shape
    jump = np.zeros((ny, nx))
    if ny > 1:
        d = np.asarray(space.distance(v[:-1].reshape(-1, n), v[1:].reshape(-1, n)))
        d = d.reshape(ny - 1, nx)
        jump[:-1] = np.maximum(jump[:-1], d)
        jump[1:] = np.maximum(jump[1:], d)
    if nx > 1:
        d = np.asarray(space.distance(v[:, :-1].reshape(-1, n), v[:, 1:].reshape(-1, n)))
        d = d.reshape(ny, nx - 1)
        jump[:, :-1] = np.maximum(jump[:, :-1], d)
        jump[:, 1:] = np.maximum(jump[:, 1:], d)
    return jump


def refine_map(
    image: np.ndarray,
    pixel_size_nm: float,
    bundle,
    coarse_stride_nm: float = 1.0,
    fine_stride_nm: float = 0.1,
    threshold: float | None = None,
    roi_nm=None,
    frame=None,
    n_views: int = 1,
    batch_size: int = 64,
    progress=null_progress,
    cancel: CancelToken | None = None,
    sampler: WindowSampler | None = None,
    fine_mode: str = "window",
    coarse_mode: str = "window",
) -> SpmMap:
    """Two-level SPM: coarse everywhere, fine only around jumps (the paper's interface search).

    ``threshold``: neighbour difference that marks an interface (default 0.3 Å for slip, 2° for
    twist). The returned map is on the fine grid; cells not refined take the value of the
    nearest coarse window. ``points`` holds every evaluated window with its level.
    ``fine_mode``, ``coarse_mode``: ``dense`` reads that level's windows from shared trunk
    passes (:mod:`stackview.inference.dense`; models trained with context).
    """
    cancel = cancel or CancelToken()
    if fine_stride_nm >= coarse_stride_nm:
        raise UsageError("the fine stride must be smaller than the coarse stride")
    start = time.perf_counter()
    card = bundle.card
    sampler = sampler or WindowSampler.for_model(image, pixel_size_nm, card, frame)
    if coarse_mode == "dense":
        from stackview.inference.dense import dense_map

        coarse = dense_map(image, pixel_size_nm, bundle, coarse_stride_nm, roi_nm, progress,
                           cancel, frame=frame, n_views=n_views, sampler=sampler)
    else:
        coarse = spm_map(image, pixel_size_nm, bundle, coarse_stride_nm, None, roi_nm, frame,
                         n_views, batch_size, progress, cancel, sampler)
    space = bundle.label_space
    if threshold is None:
        threshold = 2.0 if bundle.card.task == "twist" else 0.3
    jumps = neighbour_jumps(coarse, space)
    if sampler.frame is None:
        fine_stride_nm = (max(1, round(fine_stride_nm * 10.0 / card.sampling_A))
                          * card.sampling_A / 10.0)
    # fine grid spanning the coarse grid
    fx_nm = coarse.x_nm[0] + fine_stride_nm * np.arange(
        int(math.floor((coarse.x_nm[-1] - coarse.x_nm[0]) / fine_stride_nm + 1e-9)) + 1)
    fy_nm = coarse.y_nm[0] + fine_stride_nm * np.arange(
        int(math.floor((coarse.y_nm[-1] - coarse.y_nm[0]) / fine_stride_nm + 1e-9)) + 1)
    iy = np.abs(fy_nm[:, None] - coarse.y_nm[None, :]).argmin(axis=1)
    ix = np.abs(fx_nm[:, None] - coarse.x_nm[None, :]).argmin(axis=1)
    values = coarse.values[iy][:, ix].copy()
    unc = coarse.uncertainty[iy][:, ix].copy()
    flagged = jumps > threshold
    near = np.zeros((len(fy_nm), len(fx_nm)), dtype=bool)
    cs = coarse.stride_nm
    for j, i in zip(*np.nonzero(flagged), strict=True):
        near |= ((np.abs(fy_nm[:, None] - coarse.y_nm[j]) <= cs + 1e-9)
                 & (np.abs(fx_nm[None, :] - coarse.x_nm[i]) <= cs + 1e-9))
    cells = list(zip(*np.nonzero(near), strict=True))
    points = [coarse.points]
    if cells:
        jj, ii = np.array(cells).T
        centres = np.column_stack([fx_nm[ii], fy_nm[jj]])
        if fine_mode == "dense":
            from stackview.inference.dense import dense_readings, dense_step_px

            step = dense_step_px(fine_stride_nm * 10.0 / card.sampling_A,
                                 bundle.model.split()[2])
            v, u, _ = dense_readings(sampler, bundle, centres / pixel_size_nm, step, n_views,
                                     progress, cancel)
        else:
            runner = _Runner(bundle, n_views, batch_size)
            v, u = _evaluate(sampler, centres / pixel_size_nm, runner, progress, cancel)
        values[jj, ii] = v
        unc[jj, ii] = u
        points.append(np.column_stack([centres, v, u, np.ones(len(cells))]))
    return SpmMap(fx_nm, fy_nm, values, unc, coarse.names, coarse.window_nm, fine_stride_nm,
                  "refine", np.vstack(points), time.perf_counter() - start,
                  extra={"coarse_stride_nm": coarse.stride_nm, "threshold": threshold,
                         "refined_windows": len(cells), "fine_mode": fine_mode,
                         "coarse_mode": coarse.mode,
                         "interface_cells": int(flagged.sum())})

"""Strided pattern matching (SPM): slip/twist maps of whole images with a model bundle.

The image is resampled once to the model's sampling; windows of the model's patch size are cut
at a regular stride and predicted in batches. Three modes:

* ``window`` — every window through the network (with a few label-preserving test-time views
  for a per-window uncertainty);
* ``refine`` — the paper's two-level interface search: a coarse stride everywhere, then a fine
  stride only around coarse cells whose neighbours differ by more than a threshold;
* ``dense`` — fully convolutional: the backbone's convolutional trunk runs once per sub-stride
  offset over the whole image and each window's features are average-pooled from the shared
  feature map, so overlapping windows do not recompute their shared convolutions (fine strides
  at a fraction of the cost; it differs slightly from ``window`` because a window's features
  see context beyond its edges — :func:`compare_dense_window` measures by how much).

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


def _grid(length_px: int, window_px: int, stride_px: int, lo: int = 0, hi: int | None = None):
    """Top-left offsets of windows that fit inside [lo, hi) with the given stride."""
    hi = length_px if hi is None else min(hi, length_px)
    lo = max(lo, 0)
    if hi - lo < window_px:
        return np.zeros(0, dtype=int)
    n = (hi - lo - window_px) // stride_px + 1
    # centre the grid in the available span
    used = (n - 1) * stride_px + window_px
    start = lo + (hi - lo - used) // 2
    return start + stride_px * np.arange(n)


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

        from stackview.inference.predict import aggregate

        stack = np.stack([fn(w) for w in windows for _, fn, _ in self.views]).astype(np.float32)
        out = []
        with torch.inference_mode():
            for s in range(0, len(stack), self.batch_size):
                x = torch.from_numpy(stack[s:s + self.batch_size]).unsqueeze(1)
                out.append(self.bundle.model(x).float().numpy())
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


def _roi_px(roi_nm, shape, sampling_A: float):
    if roi_nm is None:
        return 0, shape[1], 0, shape[0]
    x0, y0, x1, y1 = (float(v) * 10.0 / sampling_A for v in roi_nm)
    if not (x1 > x0 and y1 > y0):
        raise UsageError("the region of interest must have x1 > x0 and y1 > y0 (nm)")
    return (max(int(round(x0)), 0), min(int(round(x1)), shape[1]),
            max(int(round(y0)), 0), min(int(round(y1)), shape[0]))


def spm_map(
    image: np.ndarray,
    pixel_size_nm: float,
    bundle,
    stride_nm: float = 0.5,
    window_nm: float | None = None,
    roi_nm: tuple[float, float, float, float] | None = None,
    n_views: int = 3,
    batch_size: int = 64,
    progress=null_progress,
    cancel: CancelToken | None = None,
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
        Distance between window centres (nm); rounded to whole pixels at the model's sampling.
    window_nm
        Must equal the model's window (default: the model's).
    roi_nm
        Optional region ``(x0, y0, x1, y1)`` in nm; only windows inside it are evaluated.
    n_views
        Test-time views per window for the uncertainty (1: no uncertainty, fastest).
    """
    cancel = cancel or CancelToken()
    _check_inputs(image, pixel_size_nm, bundle, window_nm, stride_nm)
    start = time.perf_counter()
    card = bundle.card
    resampled = resample_to_model(image, pixel_size_nm, card.sampling_A)
    stride_px = max(1, int(round(stride_nm * 10.0 / card.sampling_A)))
    x0, x1, y0, y1 = _roi_px(roi_nm, resampled.shape, card.sampling_A)
    xs = _grid(resampled.shape[1], card.patch_px, stride_px, x0, x1)
    ys = _grid(resampled.shape[0], card.patch_px, stride_px, y0, y1)
    if len(xs) == 0 or len(ys) == 0:
        raise UsageError("no analysis window fits inside the image or region of interest")
    runner = _Runner(bundle, n_views, batch_size)
    values, unc = _evaluate(resampled, [(y, x) for y in ys for x in xs], card.patch_px, runner,
                            progress, cancel)
    n_out = values.shape[-1]
    to_nm = card.sampling_A / 10.0
    half = card.patch_px / 2
    x_nm = (xs + half) * to_nm
    y_nm = (ys + half) * to_nm
    values = values.reshape(len(ys), len(xs), n_out)
    unc = unc.reshape(len(ys), len(xs))
    yy, xx = np.meshgrid(y_nm, x_nm, indexing="ij")
    points = np.column_stack([xx.ravel(), yy.ravel(), values.reshape(-1, n_out), unc.ravel(),
                              np.zeros(xx.size)])
    names = tuple(card.label_convention()["names"])
    return SpmMap(x_nm, y_nm, values, unc, names, card.patch_nm, stride_px * to_nm, "window",
                  points, time.perf_counter() - start)


def _evaluate(resampled, corners, window_px, runner, progress, cancel, done0=0, total=None):
    total = total or len(corners)
    out_v, out_u = [], []
    chunk = max(1, runner.batch_size // max(1, len(runner.views)))
    for s in range(0, len(corners), chunk):
        cancel.check()
        batch = np.stack([resampled[y:y + window_px, x:x + window_px]
                          for y, x in corners[s:s + chunk]])
        v, u = runner(batch)
        out_v.append(v)
        out_u.append(u)
        progress(done0 + min(s + chunk, len(corners)), total, "windows")
    return np.concatenate(out_v), np.concatenate(out_u)


def neighbour_jumps(smap: SpmMap, space) -> np.ndarray:
    """Largest symmetry-aware difference between each grid cell and its 4 neighbours."""
    v = smap.values
    ny, nx, n = v.shape
    jump = np.zeros((ny, nx))
    for axis in (0, 1):
        a = v.take(range(0, v.shape[axis] - 1), axis=axis).reshape(-1, n)
        b = v.take(range(1, v.shape[axis]), axis=axis).reshape(-1, n)
        d = np.asarray(space.distance(a, b)).reshape(
            (ny - 1, nx) if axis == 0 else (ny, nx - 1))
        if axis == 0:
            jump[:-1] = np.maximum(jump[:-1], d)
            jump[1:] = np.maximum(jump[1:], d)
        else:
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
    n_views: int = 3,
    batch_size: int = 64,
    progress=null_progress,
    cancel: CancelToken | None = None,
) -> SpmMap:
    """Two-level SPM: coarse everywhere, fine only around jumps (the paper's interface search).

    ``threshold``: neighbour difference that marks an interface (default 0.3 Å for slip, 2° for
    twist). The returned map is on the fine grid; cells not refined take the value of the
    nearest coarse window. ``points`` holds every evaluated window with its level.
    """
    cancel = cancel or CancelToken()
    if fine_stride_nm >= coarse_stride_nm:
        raise UsageError("the fine stride must be smaller than the coarse stride")
    start = time.perf_counter()
    coarse = spm_map(image, pixel_size_nm, bundle, coarse_stride_nm, None, roi_nm, n_views,
                     batch_size, progress, cancel)
    space = bundle.label_space
    if threshold is None:
        threshold = 2.0 if bundle.card.task == "twist" else 0.3
    jumps = neighbour_jumps(coarse, space)
    card = bundle.card
    to_nm = card.sampling_A / 10.0
    resampled = resample_to_model(image, pixel_size_nm, card.sampling_A)
    fine_px = max(1, int(round(fine_stride_nm * 10.0 / card.sampling_A)))
    half = card.patch_px / 2
    # fine grid over the region the coarse grid covers
    x0 = int(round(coarse.x_nm[0] / to_nm - half))
    y0 = int(round(coarse.y_nm[0] / to_nm - half))
    x1 = int(round(coarse.x_nm[-1] / to_nm + half))
    y1 = int(round(coarse.y_nm[-1] / to_nm + half))
    fx = x0 + fine_px * np.arange((x1 - x0 - card.patch_px) // fine_px + 1)
    fy = y0 + fine_px * np.arange((y1 - y0 - card.patch_px) // fine_px + 1)
    fx_nm = (fx + half) * to_nm
    fy_nm = (fy + half) * to_nm
    # nearest coarse cell of every fine cell
    iy = np.abs(fy_nm[:, None] - coarse.y_nm[None, :]).argmin(axis=1)
    ix = np.abs(fx_nm[:, None] - coarse.x_nm[None, :]).argmin(axis=1)
    values = coarse.values[iy][:, ix].copy()
    unc = coarse.uncertainty[iy][:, ix].copy()
    flagged = jumps > threshold
    # refine fine cells within one coarse stride of a flagged coarse cell
    near = np.zeros((len(fy), len(fx)), dtype=bool)
    cs = coarse.stride_nm
    for j, i in zip(*np.nonzero(flagged), strict=True):
        near |= ((np.abs(fy_nm[:, None] - coarse.y_nm[j]) <= cs)
                 & (np.abs(fx_nm[None, :] - coarse.x_nm[i]) <= cs))
    cells = list(zip(*np.nonzero(near), strict=True))
    points = [coarse.points]
    if cells:
        runner = _Runner(bundle, n_views, batch_size)
        corners = [(fy[j], fx[i]) for j, i in cells]
        v, u = _evaluate(resampled, corners, card.patch_px, runner, progress, cancel)
        for (j, i), vv, uu in zip(cells, v, u, strict=True):
            values[j, i] = vv
            unc[j, i] = uu
        jj, ii = np.array(cells).T
        points.append(np.column_stack([fx_nm[ii], fy_nm[jj], v, u, np.ones(len(cells))]))
    return SpmMap(fx_nm, fy_nm, values, unc, coarse.names, coarse.window_nm, fine_px * to_nm,
                  "refine", np.vstack(points), time.perf_counter() - start,
                  extra={"coarse_stride_nm": coarse.stride_nm, "threshold": threshold,
                         "refined_windows": len(cells),
                         "interface_cells": int(flagged.sum())})

"""Derived maps: slip-vector fields, interfaces and statistics of SPM results (no Qt).

All functions take an :class:`stackview.inference.spm.SpmMap` and its label space
(:class:`~stackview.core.labels.SlipLabels` or ``TwistLabels``); differences between
labels are always the symmetry-aware ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stackview.core.labels import SlipLabels


def aligned_values(values: np.ndarray, space) -> np.ndarray:
    """Labels moved to the equivalents nearest one reference, so they can be averaged.

    The reference is the label with the smallest median distance to the others (a medoid of a
    subsample), which keeps a domain that straddles the canonical domain's edge in one piece.
    """
    v = np.asarray(values, dtype=float).reshape(-1, values.shape[-1])
    ok = np.all(np.isfinite(v), axis=1)
    if not ok.any():
        return v
    sub = v[ok][:: max(1, ok.sum() // 200)]
    d = np.array([np.median(space.distance(sub, s)) for s in sub])
    ref = sub[np.argmin(d)]
    out = v.copy()
    if isinstance(space, SlipLabels):
        _, best = space.residual(ref, v[ok])
        out[ok] = best
    else:
        period = space.period_deg
        cands = [v[ok, 0] + k * period for k in (-1, 0, 1)]
        if space.mirror:
            cands += [-v[ok, 0] + k * period for k in (-1, 0, 1, 2)]
        cands = np.stack(cands)
        pick = np.abs(cands - ref[0]).argmin(axis=0)
        out[ok, 0] = cands[pick, np.arange(cands.shape[1])]
    return out


def label_statistics(values: np.ndarray, names, space) -> dict:
    """Median and interquartile range of each label (symmetry-aware), plus the count.

    With the stacking family as a label (``family="both"``): the slip statistics of the
    windows of the more frequent family, the windows per family (``families``) and per
    stacking class (``stacking``), and each family's own slip statistics (``per_family``)."""
    if isinstance(space, SlipLabels) and space.family == "both":
        return _family_statistics(np.asarray(values, dtype=float), names, space)
    v = aligned_values(np.asarray(values), space)
    v = v[np.all(np.isfinite(v), axis=1)]
    stats = {"n": int(len(v))}
    if not len(v):
        return stats
    med = np.median(v, axis=0)
    canon = np.atleast_1d(space.canonical(med))
    shift = canon - med
    for k, name in enumerate(names):
        q1, q3 = np.percentile(v[:, k], [25, 75])
        stats[name] = {"median": float(canon[k]), "iqr": float(q3 - q1),
                       "q1": float(q1 + shift[k]), "q3": float(q3 + shift[k])}
    return stats


def _family_statistics(values: np.ndarray, names, space: SlipLabels) -> dict:
    from stackview.core.stacking import FAMILIES, classify

    v = values.reshape(-1, values.shape[-1])
    v = v[np.all(np.isfinite(v), axis=1)]
    fam = space.family_of(v) if len(v) else np.zeros(0, dtype=int)
    counts = {f: int(np.sum(fam == k)) for k, f in enumerate(FAMILIES)}
    major = int(counts["antiparallel"] > counts["parallel"])
    stats = label_statistics(v[fam == major, :2], names[:2],
                             space.family_space(FAMILIES[major])) if len(v) else {"n": 0}
    stats["n"] = int(len(v))
    stats["majority_family"] = FAMILIES[major] if len(v) else ""
    stats["families"] = counts
    classes, _ = classify(space.material, v[:, :2], fam)
    names_, n = np.unique(classes.astype(str), return_counts=True)
    stats["stacking"] = {str(k): int(c) for k, c in zip(names_, n, strict=True) if k}
    stats["per_family"] = {
        f: label_statistics(v[fam == k, :2], names[:2], space.family_space(f))
        for k, f in enumerate(FAMILIES) if counts[f]}
    return stats


@dataclass
class Stacking:
    """Family and stacking class of every window: per row of ``smap.points`` (``family``,
    ``names``, ``distance_A``) and on the map's grid (``grid``, class names; ``""`` where no
    window was read), with the class order for legends (``classes``)."""

    family: np.ndarray
    names: np.ndarray
    distance_A: np.ndarray
    grid: np.ndarray
    classes: tuple[str, ...]

    def __iter__(self):  # (family, names, distance) as the CSV writer takes them
        return iter((self.family, self.names, self.distance_A))


def _classes_of(material, values: np.ndarray):
    from stackview.core.stacking import classify, family_names

    v = values.reshape(-1, values.shape[-1])
    ok = np.all(np.isfinite(v[:, :3]), axis=1)
    fam = family_names(np.nan_to_num(v[:, 2], nan=0.0))
    names, dist = classify(material, np.where(ok[:, None], v[:, :2], np.nan), fam)
    return np.where(ok, fam, ""), np.where(ok, names, ""), dist


def stacking_columns(smap, space) -> Stacking | None:
    """The :class:`Stacking` of a map read by a model of both families; None otherwise."""
    from stackview.core.stacking import INTERMEDIATE, stacking_classes

    if not (isinstance(space, SlipLabels) and space.family == "both"):
        return None
    fam, names, dist = _classes_of(space.material, smap.points[:, 2:5])
    _, grid, _ = _classes_of(space.material, smap.values[..., :3])
    classes = tuple(c.name for c in stacking_classes(space.material)) + (INTERMEDIATE,)
    return Stacking(fam, names, dist, grid.reshape(smap.values.shape[:2]), classes)


def _jump_midpoints(smap, space, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid cells halfway between windows one window apart whose labels differ by more than
    ``threshold`` (rows, columns)."""
    v = smap.values
    ny, nx, n = v.shape
    reach = max(1, int(round(smap.window_nm / smap.stride_nm)))
    mark = np.zeros((ny, nx), dtype=bool)
    if ny > reach:
        d = np.asarray(space.distance(v[:-reach].reshape(-1, n), v[reach:].reshape(-1, n)))
        d = d.reshape(ny - reach, nx) > threshold
        mark[reach // 2:reach // 2 + ny - reach] |= d
    if nx > reach:
        d = np.asarray(space.distance(v[:, :-reach].reshape(-1, n),
                                      v[:, reach:].reshape(-1, n)))
        d = d.reshape(ny, nx - reach) > threshold
        mark[:, reach // 2:reach // 2 + nx - reach] |= d
    return np.nonzero(mark)


@dataclass
class SlipField:
    """Slip-vector deviations Δd from a reference region, in the image frame.

    ``dx_A``, ``dy_A``: components along the image's x (columns) and y (rows), Å, shape of the
    map grid; ``magnitude_A``: |Δd|; ``reference``: the reference slip (labels); ``family``:
    the reference's family for a model of both families (windows of the other family have no
    Δd: NaN), else "".
    """

    dx_A: np.ndarray
    dy_A: np.ndarray
    magnitude_A: np.ndarray
    reference: np.ndarray
    reference_roi_nm: tuple[float, float, float, float]
    family: str = ""


def slip_vector_field(smap, space: SlipLabels, frame=None,
                      reference_roi_nm: tuple[float, float, float, float] | None = None
                      ) -> SlipField:
    """Δd = D − D_ref per window (nearest equivalents), as vectors in the image frame.

    The reference is the symmetry-aware median slip of the windows inside ``reference_roi_nm``
    (default: the lower-right quarter of the mapped area, as in the paper's Fig. 3c). Only the
    first interface is used for trilayers. For a model of both families the reference is in the
    reference region's more frequent family, and windows of the other family get no Δd (NaN): a
    slip difference across a 3R/2H boundary is not a displacement of one stacking.
    """
    v = smap.values[..., :2]
    ny, nx, _ = v.shape
    if reference_roi_nm is None:
        x0 = smap.x_nm[0] + 0.5 * (smap.x_nm[-1] - smap.x_nm[0])
        y0 = smap.y_nm[0] + 0.5 * (smap.y_nm[-1] - smap.y_nm[0])
        reference_roi_nm = (float(x0), float(y0), float(smap.x_nm[-1]), float(smap.y_nm[-1]))
    rx0, ry0, rx1, ry1 = reference_roi_nm
    sel = ((smap.x_nm[None, :] >= rx0) & (smap.x_nm[None, :] <= rx1)
           & (smap.y_nm[:, None] >= ry0) & (smap.y_nm[:, None] <= ry1))
    bilayer = SlipLabels(space.material, layers=2, layer_swap=space.layer_swap)
    if not sel.any():
        sel = np.ones((ny, nx), dtype=bool)
    same = np.ones((ny, nx), dtype=bool)
    family = ""
    if space.family == "both":
        anti = space.family_of(np.nan_to_num(smap.values[..., :3]).reshape(-1, 3)).reshape(ny, nx)
        ref_anti = bool(anti[sel].mean() > 0.5)
        family = "antiparallel" if ref_anti else "parallel"
        bilayer = space.family_space(family)
        same = anti == ref_anti
        if not (sel & same).any():
            sel = same
    ref = np.median(aligned_values(v[sel & same], bilayer), axis=0)
    err, _ = bilayer.residual(v.reshape(-1, 2), ref)  # cartesian in the lattice frame
    d = np.where(same.reshape(-1, 1), err[:, 0, :], np.nan)
    if frame is not None:
        d = d @ np.linalg.inv(frame.matrix()).T  # aligned frame -> image frame
    return SlipField(d[:, 0].reshape(ny, nx), d[:, 1].reshape(ny, nx),
                     np.linalg.norm(d, axis=1).reshape(ny, nx), ref, tuple(reference_roi_nm),
                     family)


def interface_polyline(smap, space, threshold: float | None = None,
                       n_segments: int | None = None) -> np.ndarray:
    """Polyline (k, 2) in nm along cells where neighbouring windows differ by > threshold.

    The flagged points are ordered along their principal axis and averaged in bins, which
    follows a smooth interface; an empty array when there is none.
    """
    from stackview.inference.spm import neighbour_jumps

    if isinstance(space, SlipLabels):
        jumps = neighbour_jumps(smap, space)
        jj, ii = np.nonzero(jumps > (0.3 if threshold is None else threshold))
    else:
        # twist domains a few degrees apart change over a window's width, not from one
        # window to the next: compare windows one window apart and mark the cell between
        jj, ii = _jump_midpoints(smap, space, 1.0 if threshold is None else threshold)
    if len(jj) < 2:
        return np.zeros((0, 2))
    pts = np.column_stack([smap.x_nm[ii], smap.y_nm[jj]])
    centre = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    t = (pts - centre) @ vt[0]
    n_segments = n_segments or max(2, min(20, len(pts) // 3))
    edges = np.linspace(t.min(), t.max() + 1e-9, n_segments + 1)
    line = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (t >= lo) & (t < hi)
        if m.any():
            line.append(pts[m].mean(axis=0))
    return np.array(line)

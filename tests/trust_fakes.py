"""Analysis results built by hand (known labels, NCCs and reliability) for the trust tests of
the exports, the CLI and the GUI: they need no network run and no front end."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from stackview.analysis.analyze import AnalysisResult
from stackview.inference.spm import SpmMap


def make_smap(values=(1.0, 1.5), ncc=None, nx=6, ny=5, stride_nm=1.0, window_nm=0.8,
              names=("Da_A", "Db_A")) -> SpmMap:
    """A regular grid of windows (centres from 0.5 nm, ``stride_nm`` apart) reading the
    constant ``values``; ``ncc`` (ny, nx) or None."""
    x = 0.5 + stride_nm * np.arange(nx)
    y = 0.5 + stride_nm * np.arange(ny)
    vals = np.broadcast_to(np.asarray(values, dtype=float), (ny, nx, len(names))).copy()
    unc = np.full((ny, nx), 0.05)
    xx, yy = np.meshgrid(x, y)
    points = np.column_stack([xx.ravel(), yy.ravel(), vals.reshape(-1, len(names)),
                              unc.ravel(), np.zeros(xx.size)])
    ncc_points = None if ncc is None else np.asarray(ncc, dtype=float).ravel()
    return SpmMap(x, y, vals, unc, tuple(names), window_nm, stride_nm, "window", points,
                  seconds=0.5, ncc=None if ncc is None else np.asarray(ncc, dtype=float),
                  ncc_points=ncc_points)


def make_lattice(confidence=0.42, best_ncc=0.31, scale_x=1.012, scale_y=0.996, shear=0.003):
    """A stand-in for a lattice reading: what ``AnalysisResult.summary()`` asks of one."""
    distortion = {"scale_x": scale_x, "scale_y": scale_y, "shear": shear,
                  "fast_slow_ratio": round(scale_x / scale_y, 5)}
    reading = {"pixel_size_nm": 0.015, "confidence": confidence, "reliable": True, "reason": "",
               "best_ncc": best_ncc, "scan_distortion": distortion}
    return SimpleNamespace(confidence=confidence, to_dict=lambda: dict(reading),
                           distortion=SimpleNamespace(to_dict=lambda: dict(distortion)))


def make_result(bundle, name="image.tif", values=(1.0, 1.5), ncc=None, reliable=True,
                reason="", image=None, pixel_size_nm=0.015, lattice=None,
                folder: Path | None = None) -> AnalysisResult:
    """An :class:`AnalysisResult` of a 6 × 6 nm image whose every window read ``values``."""
    smap = make_smap(values, ncc)
    if image is None:
        image = np.random.default_rng(0).normal(size=(400, 400)).astype(np.float32)
    cal = SimpleNamespace(pixel_size_nm=pixel_size_nm, source="metadata", confidence=0.875,
                          message=f"pixel size {pixel_size_nm} nm from the file")
    stats = {"n": smap.n_patches}
    for k, n in enumerate(smap.names):
        stats[n] = {"median": float(values[k]), "iqr": 0.0}
    return AnalysisResult(Path(folder or ".") / name, image, cal, bundle, smap, None, None,
                          np.zeros((0, 2)), stats, [], 1.25, reliable=reliable,
                          reliability_reason=reason, lattice=lattice)

"""Scoring a lattice reading by re-simulation: windows read under a hypothesis are compared
with the noise-free simulation of the material (:class:`MonolayerScorer`) or of the labels a
model reads in them (:class:`ResimulationScorer`). No Qt here; torch only inside the scorers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from stackview.analysis.lattice_peaks import central_crop
from stackview.materials import get_material

if TYPE_CHECKING:
    from stackview.analysis.lattice_candidates import LatticeHypothesis

#: hypotheses are scored on windows from a central crop at most this many pixels on a side
SCORING_CROP_PX = 1536


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
        return WindowSampler.for_model(self.image, px, self.card, frame,
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
        tiles = sampler.extract(pts, context=True) if sampler.context_px else windows
        with torch.inference_mode():
            x = torch.from_numpy(tiles).unsqueeze(1).to(module_device(self.bundle.model))
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

"""A small physical noise model for ADF-STEM images: the "physics noise" baseline.

:class:`PhysicsNoise` degrades a noise-free simulation the way a scanning microscope does, in
this order: finite source size (Gaussian blur), a non-linear detector/contrast response
(gamma), scan distortions (linear drift over the frame as a shear, and random per-line
horizontal jitter of the fast scan), a background (amorphous support, detector offset),
shot noise (Poisson, ``dose_per_px`` detected electrons for intensity 1) and Gaussian
read-out noise; the result is min–max normalised like every image here. It is a transparent,
fast alternative to the learned style, used as the third baseline in ``style evaluate``;
:func:`fit_physics_noise` picks its dose and blur for a given microscope by a small grid search.
Numpy/scipy only; no torch, no Qt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stackview.errors import UsageError
from stackview.style.images import normalise


@dataclass(frozen=True)
class PhysicsNoise:
    """Parameters of the noise model (pixels refer to the image being degraded).

    Parameters
    ----------
    dose_per_px
        Mean detected electrons per pixel for intensity 1 (Poisson shot noise).
    background
        Constant added (in units of the normalised intensity) before shot noise.
    read_noise
        Standard deviation of additive Gaussian noise, in normalised-intensity units.
    source_blur_px
        Gaussian sigma of the effective source size, pixels.
    gamma
        Contrast response exponent (1 = linear).
    scan_jitter_px
        Standard deviation of the random horizontal shift of each scan line, pixels.
    drift_px
        Total drift (rows, columns) accumulated over the frame, pixels (a shear).
    """

    dose_per_px: float = 40.0
    background: float = 0.15
    read_noise: float = 0.02
    source_blur_px: float = 1.0
    gamma: float = 1.0
    scan_jitter_px: float = 0.3
    drift_px: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.dose_per_px <= 0:
            raise UsageError(f"dose_per_px must be positive, not {self.dose_per_px}")
        for name in ("background", "read_noise", "source_blur_px", "scan_jitter_px"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must not be negative")
        if self.gamma <= 0:
            raise UsageError(f"gamma must be positive, not {self.gamma}")

    def replace(self, **changes) -> PhysicsNoise:
        return dataclasses.replace(self, **changes)

    def apply(self, image: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Degrade a noise-free image; returns float32 in [0, 1]."""
        rng = np.random.default_rng(rng)
        a = normalise(image).astype(np.float64)
        if self.source_blur_px > 0:
            a = ndimage.gaussian_filter(a, self.source_blur_px, mode="reflect")
        if self.gamma != 1:
            a = np.clip(a, 0, None) ** self.gamma
        h, w = a.shape
        if self.scan_jitter_px > 0 or any(self.drift_px):
            t = (np.arange(h) / max(1, h - 1))[:, None]  # slow-scan time of each line
            shift_c = self.drift_px[1] * t + self.scan_jitter_px * rng.standard_normal((h, 1))
            shift_r = self.drift_px[0] * t
            rows = np.arange(h)[:, None] + shift_r + np.zeros((1, w))
            cols = np.arange(w)[None, :] + shift_c
            a = ndimage.map_coordinates(a, [rows, cols], order=1, mode="reflect")
        counts = rng.poisson(self.dose_per_px * (np.clip(a, 0, None) + self.background))
        noisy = counts / self.dose_per_px + self.read_noise * rng.standard_normal(a.shape)
        return normalise(noisy)


def gaussian_noise(
    image: np.ndarray, sigma: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """The paper's "Gaussian noise" baseline: normalised image + N(0, sigma²), renormalised."""
    rng = np.random.default_rng(rng)
    a = normalise(image)
    return normalise(a + sigma * rng.standard_normal(a.shape))


def _score(candidate: np.ndarray, experimental: Sequence[np.ndarray]) -> float:
    from stackview.style.metrics import kl_divergence, spectrum_distance

    return kl_divergence(experimental, candidate) + spectrum_distance(experimental, candidate)


def fit_gaussian_sigma(
    simulation: np.ndarray,
    experimental: Sequence[np.ndarray],
    sigmas: Sequence[float] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6),
    seed: int = 0,
) -> float:
    """The Gaussian-noise sigma (from ``sigmas``) whose result is closest to the experimental
    images in histogram KL + spectrum distance."""
    scores = [_score(gaussian_noise(simulation, s, seed), experimental) for s in sigmas]
    return float(sigmas[int(np.argmin(scores))])


def fit_physics_noise(
    simulation: np.ndarray,
    experimental: Sequence[np.ndarray],
    base: PhysicsNoise | None = None,
    doses: Sequence[float] = (3, 6, 12, 25, 50, 100, 200, 400),
    blurs_px: Sequence[float] = (0.0, 1.0, 2.0, 3.0),
    seed: int = 0,
) -> PhysicsNoise:
    """Grid search of dose and source blur minimising histogram KL + spectrum distance to the
    experimental images (same sampling as ``simulation``). Other parameters from ``base``."""
    base = base or PhysicsNoise()
    best, best_score = base, np.inf
    for dose in doses:
        for blur in blurs_px:
            cand = base.replace(dose_per_px=float(dose), source_blur_px=float(blur))
            score = _score(cand.apply(simulation, seed), experimental)
            if score < best_score:
                best, best_score = cand, score
    return best

"""What a fit is asked to do (:class:`FitSettings`) and what it returns (:class:`FitResult`).

Plain numpy (no torch, no Qt): the fitter is :class:`stackview.fit.fit.WindowFitter`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stackview.errors import UsageError


@dataclass(frozen=True)
class FitSettings:
    """How windows are fitted (see the module docstring).

    Parameters
    ----------
    background_degree
        Degree of the background polynomial (2: offset, gradient and curvature).
    response_degree
        Degree of the detector response in the stack's image (3: a contrast non-linearity
        such as a gamma is absorbed; see :class:`stackview.fit.renderer.SlipRenderer`).
    fit_strain
        Fit the local affine map (scale, shear, rotation; 4 parameters).
    fit_blur
        Fit the Gaussian blur (source size) on top of the probe.
    fit_light
        Fit the light atoms' cross-section factor (the S/Re contrast).
    noise
        ``"poisson"`` (shot + Gaussian noise) or ``"gaussian"`` (one variance per window).
    covariance
        ``"sandwich"`` (default: the Hessian with the residual's measured correlations) or
        ``"laplace"`` (the inverse Hessian alone).
    lag_window_px
        Width (Gaussian sigma, pixels) of the lag window that smooths the residual's
        periodogram for the sandwich covariance.
    scan_jitter
        Fit a shift along x for every row (the fast scan's line jitter): ``"auto"`` where the
        windows' rows are the scan's rows (the caller says so: :meth:`WindowFitter.fit`'s
        ``scan_rows``) and the residual shows line jitter (:meth:`WindowFitter._line_jitter`),
        ``"on"`` (every window with scan rows) or ``"off"``.
    jitter_prior_A
        Prior width (Å) of the row shifts.
    max_iterations
        Levenberg–Marquardt iterations; half as many (at least 4) for the rows' shifts.
    batch_size
        Windows per batch.
    optimizer
        ``"lm"`` or ``"adam"`` (reference: plain gradient descent with autograd).
    adam_steps
        Steps of the Adam reference.
    """

    background_degree: int = 2
    response_degree: int = 3
    fit_strain: bool = True
    fit_blur: bool = True
    fit_light: bool = True
    noise: str = "poisson"
    covariance: str = "sandwich"
    lag_window_px: float = 8.0
    scan_jitter: str = "auto"
    jitter_prior_A: float = 0.1
    max_iterations: int = 12
    batch_size: int = 32
    optimizer: str = "lm"
    adam_steps: int = 400

    def __post_init__(self) -> None:
        if self.noise not in ("poisson", "gaussian"):
            raise UsageError(f"the fit's noise model is poisson or gaussian, not {self.noise!r}")
        if self.covariance not in ("sandwich", "laplace"):
            raise UsageError(f"the covariance is sandwich or laplace, not {self.covariance!r}")
        if self.optimizer not in ("lm", "adam"):
            raise UsageError(f"the optimizer is lm or adam, not {self.optimizer!r}")
        if self.scan_jitter not in ("auto", "on", "off"):
            raise UsageError(f"scan_jitter is auto, on or off, not {self.scan_jitter!r}")
        if not 0 < self.jitter_prior_A <= 5:
            raise UsageError("jitter_prior_A must be between 0 and 5 Å")
        if not 1 <= self.max_iterations <= 200:
            raise UsageError("max_iterations must be between 1 and 200")
        if not 1 <= self.batch_size <= 4096:
            raise UsageError("batch_size must be between 1 and 4096")


@dataclass
class FitResult:
    """Fit of N windows; label arrays are (N, n_labels) in the label space's units (Å).

    Attributes
    ----------
    names
        Label names (``Da_A``, ``Db_A``, …).
    labels
        Fitted labels, canonical.
    sigma
        Marginal σ of each label (the settings' covariance kind).
    sigma_laplace
        Marginal σ from the inverse Hessian alone.
    sigma_D_A
        Cartesian σ of the slip vector(s): sqrt of the trace of their covariance (Å).
    start
        The starting labels (canonical).
    moved_A
        Symmetry-aware distance between start and fit (Å; degrees for twist, as
        ``sigma_D_A``, which is then σ_θ).
    ncc
        Normalised cross-correlation of window and fitted model.
    chi2_red
        Reduced χ² under the estimated noise model.
    dose_per_px
        Estimated counts per pixel (inf: no shot noise detected).
    params
        Every fitted parameter by name, (N,) each (origin in Å from the window centre, the
        affine map's E = F − 1, blur as source FWHM in Å, …).
    converged, iterations
        Per window.
    seconds
        Wall time of the fit.
    """

    names: tuple[str, ...]
    labels: np.ndarray
    sigma: np.ndarray
    sigma_laplace: np.ndarray
    sigma_D_A: np.ndarray
    start: np.ndarray
    moved_A: np.ndarray
    ncc: np.ndarray
    chi2_red: np.ndarray
    dose_per_px: np.ndarray
    params: dict[str, np.ndarray]
    converged: np.ndarray
    iterations: np.ndarray
    seconds: float = 0.0
    covariance: np.ndarray | None = None
    settings: dict = field(default_factory=dict)
    #: the labels' unit: "A" (slip) or "deg" (twist; then sigma_D_A and moved_A are degrees)
    unit: str = "A"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def windows_per_second(self) -> float:
        return len(self) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def moved_beyond_sigma(self) -> np.ndarray:
        """Windows the fit moved by more than their σ_D (Cartesian slip σ)."""
        return self.moved_A > self.sigma_D_A

    def summary(self) -> dict:
        """The ``fit`` block of summary.json: medians and how many windows the fit moved."""
        ok = np.isfinite(self.labels).all(axis=1)
        out = {"n_windows": int(len(self)), "n_fitted": int(ok.sum()),
               "converged": int(self.converged[ok].sum()),
               "seconds": round(self.seconds, 3),
               "windows_per_second": round(self.windows_per_second, 2)
               if self.seconds > 0 else None, "settings": self.settings}
        if not ok.any():
            return out
        for k, name in enumerate(self.names):
            out[f"{name}_median"] = round(float(np.median(self.labels[ok, k])), 4)
            out[f"sigma_{name}_median"] = round(float(np.median(self.sigma[ok, k])), 5)
        moved = self.moved_beyond_sigma[ok]
        u = self.unit
        out.update({
            "ncc_median": round(float(np.median(self.ncc[ok])), 4),
            "chi2_red_median": round(float(np.median(self.chi2_red[ok])), 3),
            "dose_per_px_median": _finite_round(np.median(self.dose_per_px[ok]), 1),
            f"moved_{u}_median": round(float(np.median(self.moved_A[ok])), 4),
            "moved_more_than_sigma": int(moved.sum()),
            "moved_more_than_sigma_fraction": round(float(moved.mean()), 3),
        })
        if u == "A":
            out["sigma_D_A_median"] = round(float(np.median(self.sigma_D_A[ok])), 5)
        return out


def _finite_round(value, digits):
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None

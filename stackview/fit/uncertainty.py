"""Noise level of a window and the uncertainty of a fit: Laplace approximation at the optimum.

**Noise (the dose).** An incoherent ADF image holds no signal beyond the probe's band limit
``2 alpha / lambda`` (2.16 1/Å at 300 kV, 21.3 mrad), while a window at 0.16 Å/px reaches
3.1 1/Å: what the residual holds out there is noise alone, whatever the fit did. Its local
power, regressed on the fitted intensity, gives the Poisson/Gaussian model
``var(r) = g mu(r) + v0`` (:func:`estimate_noise`; ``mean(var) / g²`` is the dose in counts per
pixel, independent of the image's units). A reduced χ² near 1 then says the model explains the
window to its noise; above 1, by how much it does not.

**Uncertainty.** The fit minimises ``sum w (d - mu)²`` with ``w = 1 / var``; the Gauss–Newton
Hessian ``H = Jᵀ W J`` at the optimum is the curvature of the negative log-likelihood, and
``H⁻¹`` the Laplace covariance — exact for white noise of the estimated level and a model that
fits (:func:`laplace_covariance`, ``kind="laplace"``). Real windows break both: resampling,
scan noise and detector response correlate the noise, and what the model lacks (contamination,
vacancies, a contrast the incoherent model does not have) stays in the residual. The default
``kind="sandwich"`` keeps the Hessian but measures the residual's own covariance: with ``z`` the
whitened residual and ``S(k)`` its power spectrum (periodogram, smoothed by a Gaussian lag
window), ``Cov = H⁻¹ B H⁻¹`` with ``B = (1/N) sum_k K̂(k)* S(k) K̂(k)ᵀ`` and ``K = W^1/2 J``;
for white residuals of variance s² this is ``s² H⁻¹``. Marginal σ of the labels are the square
roots of the covariance's diagonal (all other parameters marginalised).

No Qt here.
"""

from __future__ import annotations

import math

import torch

#: high-frequency band used for the noise: beyond this factor times the probe's band limit
BAND_MARGIN = 1.05
#: the noise band must hold at least this fraction of the window's frequencies
MIN_BAND_FRACTION = 0.05
#: the smallest variance a pixel gets, as a fraction of the window's mean variance
VARIANCE_FLOOR = 0.05
#: width (pixels, Gaussian sigma) of the lag window that smooths the residual's periodogram
LAG_WINDOW_PX = 8.0


def _freq_grid(shape, sampling_A: float, device) -> torch.Tensor:
    ny, nx = shape
    fy = torch.fft.fftfreq(ny, d=sampling_A, device=device, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(nx, d=sampling_A, device=device, dtype=torch.float64)[None, :]
    return torch.sqrt(fx**2 + fy**2)


def estimate_noise(residual: torch.Tensor, model: torch.Tensor, sampling_A: float,
                   band_inv_A: float, poisson: bool = True) -> dict[str, torch.Tensor]:
    """Poisson/Gaussian noise model of windows from their fit residual beyond the band limit.

    Parameters
    ----------
    residual, model
        (B, ny, nx) data minus model, and the model.
    sampling_A
        Pixel size (Å).
    band_inv_A
        The probe's band limit 2 alpha / lambda (1/Å).
    poisson
        Fit the signal-dependent (shot-noise) part; False: one variance per window.

    Returns
    -------
    dict
        ``var`` (B, ny, nx) per-pixel variance, ``gain`` g and ``offset`` v0 (B,), ``dose``
        (B,) counts per pixel at the window's mean variance (inf without shot noise), and
        ``band_fraction`` — the fraction of frequencies the estimate used (0 when the window's
        sampling is too coarse to leave a noise band: the residual's own variance is used then).
    """
    B, ny, nx = residual.shape
    N = ny * nx
    r = residual.to(torch.float64)
    mu = model.to(torch.float64)
    kk = _freq_grid((ny, nx), sampling_A, r.device)
    mask = (kk > BAND_MARGIN * band_inv_A).to(torch.float64)
    frac = float(mask.mean())
    if frac < MIN_BAND_FRACTION:
        var = (r**2).mean(dim=(1, 2))
        full = var[:, None, None].expand(B, ny, nx).clone()
        return {"var": full, "gain": torch.zeros(B, dtype=torch.float64), "offset": var,
                "dose": torch.full((B,), math.inf, dtype=torch.float64),
                "band_fraction": torch.zeros(B, dtype=torch.float64)}
    # h = the residual's high-pass part; E[h(r)^2] = sum_t f(t)^2 var(r - t) for independent
    # noise, f the high-pass kernel: regress h^2 on (f^2 * mu) and sum f^2
    h = torch.fft.ifft2(torch.fft.fft2(r) * mask).real
    f = torch.fft.ifft2(mask).real
    f2_hat = torch.fft.fft2(f**2)
    smooth_mu = torch.fft.ifft2(torch.fft.fft2(mu) * f2_hat).real
    sum_f2 = float((f**2).sum())
    y = (h**2).reshape(B, N)
    if poisson:
        X = torch.stack([smooth_mu.reshape(B, N), torch.full_like(y, sum_f2)], dim=2)
        coef = torch.linalg.lstsq(X, y[..., None]).solution[..., 0]  # (B, 2)
        gain, offset = coef[:, 0], coef[:, 1]
        # no shot-noise signature (or an unphysical negative one): one variance per window
        flat = gain <= 0
        offset = torch.where(flat, y.mean(dim=1) / sum_f2, offset)
        gain = torch.where(flat, torch.zeros_like(gain), gain)
    else:
        gain = torch.zeros(B, dtype=torch.float64)
        offset = y.mean(dim=1) / sum_f2
    var = gain[:, None, None] * mu + offset[:, None, None]
    mean_var = var.mean(dim=(1, 2), keepdim=True).clamp_min(1e-30)
    var = torch.maximum(var, VARIANCE_FLOOR * mean_var)
    dose = torch.where(gain > 0, var.mean(dim=(1, 2)) / gain.clamp_min(1e-300) ** 2,
                       torch.full_like(gain, math.inf))
    return {"var": var, "gain": gain, "offset": offset, "dose": dose,
            "band_fraction": torch.full((B,), frac, dtype=torch.float64)}


def _lag_window(shape, width_px: float, device) -> torch.Tensor:
    ny, nx = shape
    ty = torch.fft.fftfreq(ny, d=1.0 / ny, device=device, dtype=torch.float64)[:, None]
    tx = torch.fft.fftfreq(nx, d=1.0 / nx, device=device, dtype=torch.float64)[None, :]
    return torch.exp(-(tx**2 + ty**2) / (2.0 * width_px**2))


def laplace_covariance(Jt: torch.Tensor, weights: torch.Tensor, residual: torch.Tensor,
                       shape: tuple[int, int], free: torch.Tensor, kind: str = "sandwich",
                       lag_window_px: float = LAG_WINDOW_PX, row_shifts=None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Covariance of the fitted parameters at the optimum (see the module docstring).

    Parameters
    ----------
    Jt
        (B, P, N) transposed Jacobian of the model at the optimum.
    weights
        (B, N) inverse noise variances.
    residual
        (B, N) data minus model.
    shape
        Window shape (ny, nx), N = ny nx.
    free
        (P,) bool: the parameters that were fitted (the others are held and left out).
    kind
        ``"sandwich"`` (default, correlated residuals) or ``"laplace"`` (H⁻¹ alone).
    row_shifts
        ``(dx, prior)`` when the rows' shifts were fitted: dx (B, N) the model's x derivative
        and the shifts' prior precision (1/Å²; a number or one per window). They are
        marginalised: the Hessian becomes its Schur complement ``H - C D⁻¹ Cᵀ`` and the
        Jacobian its part orthogonal to the shifts.

    Returns
    -------
    (cov, cov_laplace)
        (B, P, P) float64 covariances with zeros in the rows/columns of held parameters: the
        requested one and the plain Laplace H⁻¹.
    """
    if kind not in ("sandwich", "laplace"):
        raise ValueError(f"unknown covariance kind {kind!r}; use sandwich or laplace")
    B, P, N = Jt.shape
    ny, nx = shape
    idx = torch.nonzero(free).ravel()
    J = Jt[:, idx]
    w = weights.to(torch.float64)
    H = torch.bmm(J * weights[:, None].to(J.dtype), J.transpose(1, 2)).to(torch.float64)
    if row_shifts is not None:
        dx, prior = row_shifts
        wd = (weights * dx).reshape(B, ny, nx)
        prior = torch.as_tensor(prior, dtype=torch.float64, device=dx.device).reshape(-1, 1)
        Dd = (wd * dx.reshape(B, ny, nx)).sum(dim=2).to(torch.float64) + prior  # (B, ny)
        C = torch.einsum("bpij,bij->bpi", J.reshape(B, len(idx), ny, nx), wd).to(torch.float64)
        H = H - torch.bmm(C / Dd[:, None], C.transpose(1, 2))
        # the Jacobian seen by the other parameters once the shifts have taken their share
        coef = (C / Dd[:, None]).to(J.dtype)  # (B, p, ny)
        J = (J.reshape(B, len(idx), ny, nx)
             - coef[..., None] * dx.reshape(B, 1, ny, nx)).reshape(B, len(idx), N)
    # scale to unit diagonal before inverting: the parameters' units differ by orders
    d = torch.sqrt(torch.diagonal(H, dim1=1, dim2=2).clamp_min(1e-300))
    Hn = H / (d[:, :, None] * d[:, None, :])
    Hn_inv = torch.linalg.pinv(Hn, hermitian=True)
    cov_l = Hn_inv / (d[:, :, None] * d[:, None, :])
    cov = cov_l
    if kind == "sandwich":
        sw = torch.sqrt(w)
        z = (sw * residual.to(torch.float64)).reshape(B, ny, nx)
        zh = torch.fft.rfft2(z)
        power = torch.fft.irfft2(zh.real**2 + zh.imag**2, s=(ny, nx)) / N  # circular acf
        power = power * _lag_window((ny, nx), lag_window_px, z.device)
        spectrum = torch.fft.rfft2(power).real.clamp_min(0.0)  # (B, ny, nx//2 + 1)
        # the spectra in the Jacobian's precision (float32 in the fit): B is a sum of positive
        # terms and needs no more
        K = (J * sw[:, None].to(J.dtype)).reshape(B, len(idx), ny, nx)
        Kh = torch.fft.rfft2(K)  # (B, p, ny, nx//2 + 1)
        # the half spectrum counts the other half twice, except the columns that are their
        # own mirror (zero and, for even nx, Nyquist)
        col = torch.full((nx // 2 + 1,), 2.0, dtype=torch.float64, device=z.device)
        col[0] = 1.0
        if nx % 2 == 0:
            col[-1] = 1.0
        sw_spec = (spectrum * col).reshape(B, -1).to(Jt.dtype)
        Kf = Kh.reshape(B, len(idx), -1)
        Kw = Kf * sw_spec[:, None]
        Bm = ((torch.bmm(Kw.real, Kf.real.transpose(1, 2))
               + torch.bmm(Kw.imag, Kf.imag.transpose(1, 2))) / N).to(torch.float64)
        cov = cov_l @ Bm @ cov_l
    full = torch.zeros(B, P, P, dtype=torch.float64, device=Jt.device)
    full_l = torch.zeros_like(full)
    ii = idx[:, None], idx[None, :]
    full[:, ii[0], ii[1]] = cov
    full_l[:, ii[0], ii[1]] = cov_l
    return full, full_l

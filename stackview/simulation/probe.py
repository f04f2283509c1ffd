"""The aberrated STEM probe, written in numpy (equivalent to abTEM's ``Probe``).

The probe wave function in reciprocal space is ``psi(k) = A(k) exp(-i chi(k))`` with the
aperture ``A`` (a disc of radius ``alpha / lambda`` whose edge is anti-aliased over one
reciprocal pixel exactly like abTEM's soft aperture) and the phase error

    chi(alpha) = 2 pi / lambda * (C10 alpha^2 / 2 + C30 alpha^4 / 4),  C10 = -defocus,

(Kirkland's / abTEM's convention: positive ``defocus_A`` is underfocus). Its intensity
``|IFFT(psi)|^2`` is the point-spread function of incoherent ADF imaging. The module also
gives the source-size transfer function and the radius of the probe tail. It must not import
Qt, torch or abTEM (tests compare it with abTEM).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft

from .optics import Optics

__all__ = [
    "probe_wave_fourier",
    "probe_intensity",
    "source_transfer",
    "probe_tail_radius_A",
]


def _fft_freqs(gpts: tuple[int, int], sampling_A: float) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies (1/Å) of an FFT grid, as (ky[:, None], kx[None, :])."""
    ny, nx = gpts
    ky = np.fft.fftfreq(ny, d=sampling_A)[:, None]
    kx = np.fft.fftfreq(nx, d=sampling_A)[None, :]
    return ky, kx


def probe_wave_fourier(optics: Optics, gpts: tuple[int, int], sampling_A: float) -> np.ndarray:
    """Probe wave function in reciprocal space on an FFT grid (zero frequency at [0, 0]).

    Parameters
    ----------
    optics : Optics
        Energy, convergence semi-angle, defocus and Cs are used.
    gpts : (int, int)
        Grid shape (ny, nx).
    sampling_A : float
        Real-space pixel size in Å.

    Returns
    -------
    numpy.ndarray
        complex128 array of shape ``gpts``, normalised so that the real-space probe
        ``ifft2(psi)`` has ``sum |psi_r|^2 == 1``; the probe is centred on pixel [0, 0].
    """
    ny, nx = gpts
    lam = optics.wavelength_A
    ky, kx = _fft_freqs(gpts, sampling_A)
    alpha = np.sqrt(kx**2 + ky**2) * lam  # scattering angle in rad
    alpha_c = optics.convergence_mrad * 1e-3
    # abTEM's soft aperture: linear taper one angular pixel wide, centred on the cutoff.
    phi = np.arctan2(ky, kx)
    dax = lam / (nx * sampling_A)
    day = lam / (ny * sampling_A)
    denom = np.sqrt((np.cos(phi) * dax) ** 2 + (np.sin(phi) * day) ** 2)
    denom[0, 0] = 1.0
    aperture = np.clip((alpha_c - alpha) / denom + 0.5, 0.0, 1.0)
    aperture[0, 0] = 1.0
    c10 = -optics.defocus_A
    chi = 2.0 * np.pi / lam * (c10 * alpha**2 / 2.0 + optics.Cs_A * alpha**4 / 4.0)
    psi = aperture * np.exp(-1j * chi)
    # Parseval: sum |ifft2(psi)|^2 = sum |psi|^2 / (ny nx).
    norm = math.sqrt(float(np.sum(np.abs(psi) ** 2)) / (ny * nx))
    return psi / norm


def probe_intensity(
    optics: Optics, gpts: tuple[int, int], sampling_A: float, centered: bool = True
) -> np.ndarray:
    """Real-space probe intensity (no source-size blur) on a periodic grid.

    Parameters
    ----------
    optics : Optics
        Microscope conditions.
    gpts : (int, int)
        Grid shape (ny, nx).
    sampling_A : float
        Pixel size in Å.
    centered : bool
        If True the probe sits on pixel (ny // 2, nx // 2) (like abTEM's ``Probe.build()``
        on an even grid); otherwise on pixel (0, 0).

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``gpts`` that sums to 1.
    """
    psi = np.fft.ifft2(probe_wave_fourier(optics, gpts, sampling_A))
    intensity = np.abs(psi) ** 2
    intensity /= intensity.sum()
    if centered:
        intensity = np.fft.fftshift(intensity)
    return intensity


def source_transfer(source_size_A: float, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Fourier transform of the normalised Gaussian source blur of FWHM ``source_size_A``.

    ``exp(-2 pi^2 sigma^2 |k|^2)`` with ``sigma = FWHM / (2 sqrt(2 ln 2))``; ``k`` in 1/Å.
    """
    sigma = source_size_A / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return np.exp(-2.0 * np.pi**2 * sigma**2 * (kx**2 + ky**2))


@functools.lru_cache(maxsize=64)
def probe_tail_radius_A(optics: Optics, outside_fraction: float = 0.015) -> float:
    """Radius outside which only ``outside_fraction`` of the (source-blurred) probe lies.

    Used as the padding of the incoherent simulator: atoms farther than this from the field
    of view are ignored and wrap-around of the FFT convolution stays outside it. The Airy tail
    carries energy ~1/r, so the fraction falls slowly (300 kV/21.3 mrad/40 Å defocus: 1.5 %
    outside ~5 Å, 0.7 % outside 10 Å); the neglected far tail is a smooth background.

    Returns
    -------
    float
        Radius in Å, rounded up to 0.5 Å, at least 2 Å.
    """
    # Sampling at half the intensity's Nyquist step; extent well beyond the wanted radius.
    sampling = 0.5 * optics.nyquist_sampling_A
    extent = 48.0 + 4.0 * abs(optics.defocus_A) * optics.convergence_mrad * 1e-3
    n = min(2048, max(256, scipy.fft.next_fast_len(math.ceil(extent / sampling))))
    psi = probe_wave_fourier(optics, (n, n), sampling)
    ky, kx = _fft_freqs((n, n), sampling)
    intensity_k = np.fft.fft2(np.abs(np.fft.ifft2(psi)) ** 2)
    intensity_k *= source_transfer(optics.source_size_A, ky, kx)
    intensity = np.fft.fftshift(np.real(np.fft.ifft2(intensity_k)))
    intensity = np.clip(intensity, 0.0, None)
    intensity /= intensity.sum()
    c = n // 2
    yy, xx = np.indices((n, n))
    ring = np.rint(np.hypot(yy - c, xx - c)).astype(np.int64).ravel()
    enclosed = np.cumsum(np.bincount(ring, intensity.ravel()))
    idx = int(np.searchsorted(enclosed, 1.0 - outside_fraction))
    radius = (idx + 0.5) * sampling
    return max(2.0, math.ceil(radius * 2.0) / 2.0)

"""Image comparison: normalised cross-correlation, sub-pixel registration (numpy/scipy only).

Used to check that two images show the same motif (e.g. slips D and −D, or an experimental
window against the re-simulation of its inferred model). No Qt here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation (Pearson correlation) of two equally shaped images."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else 0.0


def register_translation(reference: np.ndarray, moving: np.ndarray,
                         upsample: int = 20) -> np.ndarray:
    """Shift (dy, dx) in pixels that best aligns ``moving`` onto ``reference``.

    Phase correlation of Hann-windowed images with the lowest frequencies suppressed (the shared
    window envelope would otherwise pull the peak to zero shift), refined to 1/``upsample``
    pixel by a local upsampled DFT of the cross-power spectrum (Guizar-Sicairos et al. 2008).
    Apply with ``scipy.ndimage.shift(moving, shift)``.
    """
    ref = np.asarray(reference, dtype=float)
    mov = np.asarray(moving, dtype=float)
    if ref.shape != mov.shape:
        raise ValueError(f"images differ in shape: {ref.shape} vs {mov.shape}")
    ny, nx = ref.shape
    window = np.outer(np.hanning(ny), np.hanning(nx))
    fa = np.fft.fft2((ref - ref.mean()) * window)
    fb = np.fft.fft2((mov - mov.mean()) * window)
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-12 * np.abs(cross).max()
    ky = np.fft.fftfreq(ny) * ny
    kx = np.fft.fftfreq(nx) * nx
    cross[np.hypot(*np.meshgrid(ky, kx, indexing="ij")) < 3] = 0
    corr = np.fft.ifft2(cross).real
    peak = np.array(np.unravel_index(np.argmax(corr), corr.shape), dtype=float)
    size = np.array(corr.shape, dtype=float)
    peak = np.where(peak > size / 2, peak - size, peak)
    # local upsampled DFT around the coarse peak
    span = 1.5
    offs = np.arange(-span, span + 1e-9, 1.0 / upsample)
    ey = np.exp(2j * np.pi * np.outer(peak[0] + offs, ky) / ny)
    ex = np.exp(2j * np.pi * np.outer(kx, peak[1] + offs) / nx)
    local = (ey @ cross @ ex).real
    iy, ix = np.unravel_index(np.argmax(local), local.shape)
    return np.array([peak[0] + offs[iy], peak[1] + offs[ix]])


def registered_ncc(reference: np.ndarray, moving: np.ndarray, border: int | None = None,
                   refine: bool = True) -> float:
    """NCC after aligning ``moving`` onto ``reference`` by a sub-pixel translation.

    The phase-correlation estimate is refined by maximising the NCC itself (Nelder–Mead over
    the shift), which removes the small bias that windowing leaves. Edges are excluded.
    """
    from scipy.optimize import minimize

    ref = np.asarray(reference, float)
    mov = np.asarray(moving, float)
    shift0 = register_translation(ref, mov)
    b = border if border is not None else int(np.ceil(np.abs(shift0).max())) + 3
    sl = (slice(b, -b or None), slice(b, -b or None))

    def score(shift):
        aligned = ndimage.shift(mov, shift, order=3, mode="nearest")
        return ncc(ref[sl], aligned[sl])

    if not refine:
        return score(shift0)
    result = minimize(lambda s: -score(s), shift0, method="Nelder-Mead",
                      options={"xatol": 1e-3, "fatol": 1e-7, "initial_simplex":
                               [shift0, shift0 + [0.3, 0], shift0 + [0, 0.3]]})
    return max(-float(result.fun), score(shift0))

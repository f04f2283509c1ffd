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


def register_translation(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Shift (dy, dx) in pixels that best aligns ``moving`` onto ``reference``.

    Phase correlation with a windowed FFT, refined to sub-pixel precision by a parabola
    through the correlation peak. Apply with ``scipy.ndimage.shift(moving, shift)``.
    """
    ref = np.asarray(reference, dtype=float)
    mov = np.asarray(moving, dtype=float)
    window = np.outer(np.hanning(ref.shape[0]), np.hanning(ref.shape[1]))
    fa = np.fft.fft2((ref - ref.mean()) * window)
    fb = np.fft.fft2((mov - mov.mean()) * window)
    cross = fa * np.conj(fb)
    cross /= np.abs(cross) + 1e-12
    corr = np.fft.ifft2(cross).real
    peak = np.array(np.unravel_index(np.argmax(corr), corr.shape))
    shift = peak.astype(float)
    for axis in (0, 1):
        n = corr.shape[axis]
        idx = [peak[0], peak[1]]
        vals = []
        for d in (-1, 0, 1):
            idx[axis] = (peak[axis] + d) % n
            vals.append(corr[tuple(idx)])
        denom = vals[0] - 2 * vals[1] + vals[2]
        if denom != 0:
            shift[axis] += 0.5 * (vals[0] - vals[2]) / denom
    size = np.array(corr.shape)
    shift = np.where(shift > size / 2, shift - size, shift)
    return shift


def registered_ncc(reference: np.ndarray, moving: np.ndarray, border: int | None = None) -> float:
    """NCC after aligning ``moving`` onto ``reference`` by translation (edges excluded)."""
    shift = register_translation(reference, moving)
    aligned = ndimage.shift(np.asarray(moving, float), shift, order=3, mode="nearest")
    b = border if border is not None else int(np.ceil(np.abs(shift).max())) + 2
    sl = (slice(b, -b or None), slice(b, -b or None))
    return ncc(np.asarray(reference, float)[sl], aligned[sl])

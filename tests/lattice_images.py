"""Simulated images degraded the way real files are, with an exactly known geometry (tests).

The final image's pixel (x, y) is mapped to the fine simulation through one affine map, so the
true pixel size, orientation, face and scan distortion are known exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from stackview.materials import build_stack
from stackview.simulation import PRESETS, simulate


def degraded_image(material: str = "ReS2", slip_A=(0.8, 1.9), preset: str = "ReS2-300kV",
                   out_px: int = 400, pixel_nm: float = 0.008, rotation_deg: float = 23.0,
                   distortion=((1.0, 0.0), (0.0, 1.0)), mirror: bool = False,
                   dose: float | None = None, fine_A: float = 0.1, seed: int = 0,
                   eight_bit: bool = True, drift_px_per_row2: float = 0.0) -> np.ndarray:
    """An ``out_px``² image of the stack with slip ``slip_A``.

    ``distortion`` is the upper-triangular scan distortion T (image px per undistorted px):
    the image's px-per-Å map is T·R⁻¹/pixel, R the lattice rotation by ``rotation_deg``.
    ``drift_px_per_row2``: a slow-scan drift along x quadratic in the row (centred): row y
    (from the middle) is displaced by ``drift_px_per_row2 · y²`` undistorted pixels, so the
    shear changes linearly down the image.
    """
    t = math.radians(rotation_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    to_A = rot @ np.linalg.inv(np.asarray(distortion, float)) * (pixel_nm * 10)
    if mirror:
        to_A = to_A @ np.diag([1.0, -1.0])
    corners = (np.array([[0, 0], [1, 0], [0, 1], [1, 1]]) - 0.5) * out_px
    extent = float(np.abs(corners @ to_A.T).max()) * 2 + 10
    extent += 2 * abs(drift_px_per_row2) * (out_px / 2) ** 2 * pixel_nm * 10
    fov = (extent, extent)
    atoms = build_stack(material, [slip_A], fov_A=fov, margin_A=8)
    img = simulate(atoms, PRESETS[preset], sampling_A=fine_A, fov_A=fov).image
    yy, xx = np.mgrid[:out_px, :out_px]
    p = np.vstack([xx.ravel() + 0.5 - out_px / 2, yy.ravel() + 0.5 - out_px / 2])
    p[0] += drift_px_per_row2 * p[1] ** 2
    q = to_A @ p / fine_A
    out = ndimage.map_coordinates(img, [q[1] + img.shape[0] / 2 - 0.5,
                                        q[0] + img.shape[1] / 2 - 0.5], order=3)
    out = out.reshape(out_px, out_px)
    if dose:
        rng = np.random.default_rng(seed)
        out = rng.poisson(np.clip(out, 0, None) / out.mean() * dose).astype(np.float32)
    if eight_bit:
        out = np.round(255 * (out - out.min()) / np.ptp(out))
    return out.astype(np.float32)


def true_pixel_size_nm(pixel_nm: float, distortion) -> float:
    """The mean pixel size (nm) of an image made with ``distortion``."""
    return pixel_nm / math.sqrt(abs(np.linalg.det(np.asarray(distortion, float))))

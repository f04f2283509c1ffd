"""Pixel grid of a simulated image: one convention shared by every simulator.

Convention: an image is a ``(ny, nx)`` array, row index ``i`` along +y, column index ``j``
along +x (Å). For a field of view with lower corner ``origin_A = (x0, y0)`` and pixel size
``s = sampling_A``, pixel ``(i, j)`` is the point sample of the signal at the probe position

    x = x0 + (j + 0.5) * s,   y = y0 + (i + 0.5) * s,

so the pixels tile the rectangle ``[x0, x0 + nx s] x [y0, y0 + ny s]`` exactly, with pixel
centres half a pixel inside its edges. ``nx = round(fov_x / s)``, ``ny = round(fov_y / s)``.
(Displayed with ``origin="lower"`` the image matches the atoms' x-y plot; with the default
``origin="upper"`` of image viewers it is the mirror image in y.)

This module must not import Qt, torch or abTEM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["as_xy_pair", "image_shape", "pixel_centers_A"]


def as_xy_pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    """``value`` as an ``(x, y)`` pair of finite floats (a scalar is used for both)."""
    try:
        if np.ndim(value) == 0:
            pair = (float(value), float(value))  # type: ignore[arg-type]
        else:
            items = [float(v) for v in value]  # type: ignore[union-attr]
            if len(items) != 2:
                raise ValueError
            pair = (items[0], items[1])
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an (x, y) pair, got {value!r}.") from None
    if not all(math.isfinite(v) for v in pair):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return pair


def image_shape(fov_A: float | Sequence[float], sampling_A: float) -> tuple[int, int]:
    """Image shape ``(ny, nx)`` for a field of view ``(fov_x, fov_y)`` in Å at ``sampling_A``.

    Raises
    ------
    ValueError
        If the sampling is not positive or the field of view is smaller than one pixel.
    """
    fov_x, fov_y = as_xy_pair(fov_A, "fov_A")
    if not (math.isfinite(sampling_A) and sampling_A > 0):
        raise ValueError(f"sampling_A must be a positive number of Å/px, got {sampling_A!r}.")
    nx = int(round(fov_x / sampling_A))
    ny = int(round(fov_y / sampling_A))
    if nx < 1 or ny < 1:
        raise ValueError(
            f"The field of view {fov_x:g} x {fov_y:g} Å is smaller than one pixel of "
            f"{sampling_A:g} Å."
        )
    return ny, nx


def pixel_centers_A(
    shape: tuple[int, int], sampling_A: float, origin_A: Sequence[float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Probe positions of the pixel centres: ``(x[nx], y[ny])`` in Å (see module docstring)."""
    ny, nx = shape
    x0, y0 = as_xy_pair(origin_A, "origin_A")
    x = x0 + (np.arange(nx) + 0.5) * sampling_A
    y = y0 + (np.arange(ny) + 0.5) * sampling_A
    return x, y

"""Helpers for the style tests: tiny synthetic lattices, stripes and "experimental" images.

Imported by the other ``test_style_*`` modules; holds no tests itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from stackview.style.images import normalise
from stackview.style.physics_noise import PhysicsNoise


def lattice(
    n: int = 64, a_px: float = 8.0, shift=(0.0, 0.0), theta: float = 0.0, m: int | None = None
) -> np.ndarray:
    """Hexagonal lattice of bright blobs (three plane waves, exponentiated), [0, 1]."""
    m = m or n
    yy, xx = np.mgrid[:n, :m].astype(float)
    k = 4 * np.pi / (np.sqrt(3) * a_px)
    img = np.zeros((n, m))
    for ang in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
        kx, ky = k * np.cos(ang + theta), k * np.sin(ang + theta)
        img += np.cos(kx * (xx - shift[1]) + ky * (yy - shift[0]))
    return normalise(np.exp(img))


def stripes(n: int = 64, period_px: float = 9.0, theta: float = 0.3) -> np.ndarray:
    """Parallel stripes, [0, 1]."""
    yy, xx = np.mgrid[:n, :n].astype(float)
    return normalise(np.cos(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period_px))


def experimental(n: int = 64, seed: int = 0, **kw) -> np.ndarray:
    """A noisy, blurred, jittered lattice standing in for a microscope image."""
    rng = np.random.default_rng(seed)
    return PhysicsNoise(dose_per_px=20).apply(lattice(n, shift=rng.uniform(0, 8, 2), **kw), seed)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny networks run fastest, and immune to a busy machine, on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""ADF cross-sections of single atoms for the incoherent-imaging model.

Model (the one Kirkland's incostem uses): in the incoherent approximation an atom of atomic
number Z at r_j adds ``sigma_Z * P(r - r_j)`` to the ADF signal, with P the probe intensity
(normalised to 1) and sigma_Z the partial elastic cross-section of a single, isolated atom
for electrons scattered into the detector annulus (first Born approximation, relativistic):

    sigma_Z = gamma^2 * lambda^2 * 2 pi * integral_{k_in}^{k_out} |f_e(k)|^2 k dk   [Å^2],

where f_e(k) is the electron scattering factor (Å) at spatial frequency k = theta / lambda
(1/Å), ``theta`` between the detector's inner and outer semi-angles, and gamma the Lorentz
factor. The image is then the fraction of the incident probe current that reaches the
detector (dimensionless). No Debye-Waller damping or thermal diffuse scattering, no
channelling: the relative Z contrast (~Z^1.6-1.8 for these detectors) is what matters.

f_e comes from the parametrisations shipped inside abTEM (``kirkland.json``: Kirkland 2010,
the one incostem uses, the default; or ``lobato.json``: Lobato & Van Dyck 2014). The JSON
files are read directly, without importing abTEM (importing abTEM takes seconds). If abTEM
or an element is missing, cross-sections fall back to ``Z**1.7`` in arbitrary units (a
logged warning says so; :func:`cross_section_model` reports the model used).

This module must not import Qt, torch or abTEM.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
from collections.abc import Iterable

import numpy as np

from .optics import Optics, _lorentz_factor

__all__ = [
    "adf_cross_section_A2",
    "adf_cross_sections",
    "cross_section_model",
    "electron_scattering_factor_A",
]

logger = logging.getLogger(__name__)

_PARAMETRIZATIONS = ("kirkland", "lobato")
_FALLBACK_EXPONENT = 1.7
_WARNED: set[tuple] = set()


@functools.lru_cache(maxsize=4)
def _load_parametrization(name: str) -> dict[str, np.ndarray] | None:
    """The parameter table of one of abTEM's parametrisations, or None if unavailable."""
    if name not in _PARAMETRIZATIONS:
        raise ValueError(
            f"Unknown scattering-factor parametrisation {name!r}; "
            f"choose one of {', '.join(_PARAMETRIZATIONS)}."
        )
    try:
        spec = importlib.util.find_spec("abtem")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        logger.warning("abTEM is not installed: ADF cross-sections fall back to Z^1.7.")
        return None
    path = os.path.join(
        list(spec.submodule_search_locations)[0], "parametrizations", "data", f"{name}.json"
    )
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except OSError:
        logger.warning("abTEM parametrisation %s not found: falling back to Z^1.7.", path)
        return None
    return {symbol: np.asarray(p, dtype=float) for symbol, p in raw.items()}


def electron_scattering_factor_A(
    Z: int, k_inv_A: np.ndarray, parametrization: str = "kirkland"
) -> np.ndarray | None:
    """Non-relativistic electron scattering factor f_e(k) in Å.

    Parameters
    ----------
    Z : int
        Atomic number.
    k_inv_A : numpy.ndarray
        Spatial frequency |k| = theta / lambda in 1/Å.
    parametrization : {"kirkland", "lobato"}
        Which of abTEM's tables to use.

    Returns
    -------
    numpy.ndarray or None
        f_e at each k, or None when the table (or the element) is unavailable.
    """
    from ase.data import chemical_symbols

    table = _load_parametrization(parametrization)
    if table is None:
        return None
    symbol = chemical_symbols[int(Z)]
    if symbol not in table:
        return None
    p = table[symbol]
    k2 = np.asarray(k_inv_A, dtype=float) ** 2
    if parametrization == "kirkland":
        # f(k) = sum_i a_i / (k^2 + b_i) + c_i exp(-d_i k^2)   (Kirkland 2010, Appendix C)
        a, b, c, d = p
        return (a[:, None] / (k2[None] + b[:, None])).sum(0) + (
            c[:, None] * np.exp(-d[:, None] * k2[None])
        ).sum(0)
    # Lobato & Van Dyck: f(k) = sum_i a_i (2 + b_i k^2) / (1 + b_i k^2)^2
    a, b = p
    bk2 = b[:, None] * k2[None]
    return (a[:, None] * (2.0 + bk2) / (1.0 + bk2) ** 2).sum(0)


@functools.lru_cache(maxsize=4)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _optics_key(optics: Optics) -> tuple[float, float, float]:
    return (optics.energy_kV, optics.adf_inner_mrad, optics.adf_outer_mrad)


@functools.lru_cache(maxsize=1024)
def _cross_section_cached(
    Z: int, energy_kV: float, inner_mrad: float, outer_mrad: float, parametrization: str
) -> float | None:
    from .optics import electron_wavelength_A

    lam = electron_wavelength_A(energy_kV)
    k_in = inner_mrad * 1e-3 / lam
    k_out = outer_mrad * 1e-3 / lam
    # f_e is smooth: Gauss-Legendre on the annulus converges fast (128 nodes agree with 1024
    # to 1e-12 relative).
    nodes, wts = _gauss_legendre(128)
    k = 0.5 * (k_out - k_in) * nodes + 0.5 * (k_out + k_in)
    f = electron_scattering_factor_A(Z, k, parametrization)
    if f is None:
        return None
    integral = 0.5 * (k_out - k_in) * float(np.sum(wts * f**2 * k))
    gamma = _lorentz_factor(energy_kV)
    return gamma**2 * lam**2 * 2.0 * np.pi * integral


def adf_cross_section_A2(Z: int, optics: Optics, parametrization: str = "kirkland") -> float:
    """ADF partial cross-section of one atom (Å^2; Z^1.7 in arbitrary units as fallback).

    Parameters
    ----------
    Z : int
        Atomic number (1-98 for the tables).
    optics : Optics
        Energy and detector angles are used.
    parametrization : {"kirkland", "lobato"}
        Scattering-factor table.

    Returns
    -------
    float
        Cross-section in Å^2 (cached per Z and optics).
    """
    Z = int(Z)
    if Z < 1:
        raise ValueError(f"Atomic number must be >= 1, got {Z}.")
    value = _cross_section_cached(Z, *_optics_key(optics), parametrization)
    if value is None:
        logger.warning("No scattering factor for Z=%d: using Z^%.1f.", Z, _FALLBACK_EXPONENT)
        return float(Z) ** _FALLBACK_EXPONENT
    return float(value)


def cross_section_model(
    numbers: Iterable[int], optics: Optics, parametrization: str = "kirkland"
) -> str:
    """Name of the model :func:`adf_cross_sections` uses for these elements."""
    zs = sorted({int(z) for z in numbers})
    if all(_cross_section_cached(z, *_optics_key(optics), parametrization) is not None for z in zs):
        return f"{parametrization} |f_e|^2 over the ADF annulus"
    return f"Z^{_FALLBACK_EXPONENT}"


def adf_cross_sections(
    numbers: np.ndarray, optics: Optics, parametrization: str = "kirkland"
) -> np.ndarray:
    """Cross-section (Å^2) of every atom in ``numbers``, as a float64 array.

    Uses the tabulated model for all elements, or ``Z**1.7`` for all of them when any
    element lacks a scattering factor (so that relative intensities stay consistent).
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    if numbers.size == 0:
        return np.zeros(0)
    if numbers.min() < 1:
        raise ValueError(f"Atomic numbers must be >= 1, got {int(numbers.min())}.")
    zs = np.flatnonzero(np.bincount(numbers))  # O(N), unlike np.unique's sort
    values = [_cross_section_cached(int(z), *_optics_key(optics), parametrization) for z in zs]
    if any(v is None for v in values):
        if (key := (tuple(zs.tolist()), parametrization)) not in _WARNED:
            _WARNED.add(key)  # once per process: a dataset renders thousands of patches
            logger.warning(
                "Scattering factors unavailable for some of Z=%s: using Z^%.1f for all atoms.",
                list(zs),
                _FALLBACK_EXPONENT,
            )
        table = zs.astype(float) ** _FALLBACK_EXPONENT
    else:
        table = np.asarray(values, dtype=float)
    lookup = np.zeros(int(zs[-1]) + 1)
    lookup[zs] = table
    return lookup[numbers]

"""Atomic models from inferred labels, their re-simulation and comparison with the image.

The paper's Fig. 4g check: build the stack a window's inferred slip/twist describes, simulate it
with the model's imaging conditions, register it onto the experimental window and report the
normalised cross-correlation and a line profile through both. The same comparison decides the
lattice reading (:mod:`stackview.analysis.lattice_reading`) and checks every window
(:mod:`stackview.analysis.trust`). No Qt here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from stackview.analysis.compare import ncc, register_translation
from stackview.errors import UsageError
from stackview.io.atomic import atomic_path
from stackview.materials import build_stack, build_twisted, get_material

log = logging.getLogger(__name__)

EXPORT_FORMATS = {".xyz": "extxyz", ".cif": "cif", ".vasp": "vasp", ".poscar": "vasp"}


def atoms_for_labels(material, task: str, values, fov_A, margin_A: float = 8.0,
                     interlayer_A: float | None = None):
    """``ase.Atoms`` of the stack that labels describe (slip (Da, Db[, Dc, Dd]) Å or θ°)."""
    material = get_material(material)
    values = np.atleast_1d(np.asarray(values, dtype=float))
    if task == "twist":
        return build_twisted(material, float(values[0]), fov_A=fov_A, margin_A=margin_A,
                             interlayer_A=interlayer_A)
    # (Da, Db, family): a bilayer of either stacking family (family >= 0.5: antiparallel)
    anti = len(values) == 3 and values[2] >= 0.5
    slips = values[:2] if len(values) == 3 else values
    return build_stack(material, slips.reshape(-1, 2), fov_A=fov_A, margin_A=margin_A,
                       interlayer_A=interlayer_A, antiparallel=bool(anti))


def export_atoms(atoms, path: str | Path) -> Path:
    """Write an atomic model as xyz / CIF / POSCAR (by suffix), atomically."""
    import ase.io

    path = Path(path)
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None and path.name.upper() != "POSCAR":
        raise UsageError(f"atomic models are written as {', '.join(EXPORT_FORMATS)} or POSCAR; "
                         f"not {path.suffix or path.name}")
    fmt = fmt or "vasp"
    out = atoms.copy()
    if fmt in ("cif", "vasp"):
        out.pbc = True  # these formats need a cell; the box is the field of view plus margin
        out.positions = out.positions - out.positions.min(axis=0) + 1.0
    with atomic_path(path) as tmp:
        ase.io.write(tmp, out, format=fmt)
    return path


def simulate_window(material, task: str, values, sampling_A: float, patch_px: int,
                    optics) -> np.ndarray:
    """Noise-free incoherent simulation of a window with the given labels."""
    from stackview.simulation import simulate

    fov = (patch_px * sampling_A, patch_px * sampling_A)
    # a margin beyond the probe's tail (7.5 Å at 60 kV) by more than one row of atoms
    atoms = atoms_for_labels(material, task, values, fov, margin_A=12.0)
    return simulate(atoms, optics, sampling_A=sampling_A, fov_A=fov).image


@dataclass
class WindowCheck:
    """Experimental window against the re-simulation of its inferred labels."""

    window: np.ndarray
    simulated: np.ndarray
    ncc: float
    shift_px: np.ndarray
    profile_experiment: np.ndarray
    profile_simulation: np.ndarray


def _norm(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return (a - a.mean()) / (a.std() + 1e-12)


def compare_window(window: np.ndarray, simulated: np.ndarray, border_px: int | None = None
                   ) -> WindowCheck:
    """Register ``simulated`` onto ``window`` (translation) and compare them.

    The lattice origin of the re-simulation is arbitrary, so the simulation is shifted onto
    the window first; the NCC is computed away from the edges, and the line profiles run along
    the middle row of both.
    """
    w = np.asarray(window, dtype=float)
    s = np.asarray(simulated, dtype=float)
    shift = register_translation(w, s)
    aligned = ndimage.shift(s, shift, order=3, mode="grid-wrap")
    b = border_px if border_px is not None else max(2, w.shape[0] // 8)
    core = (slice(b, -b), slice(b, -b))
    value = ncc(w[core], aligned[core])
    row = w.shape[0] // 2
    return WindowCheck(w, aligned, value, shift, _norm(w[row]), _norm(aligned[row]))

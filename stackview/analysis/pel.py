"""Interlayer potential-energy landscape (PEL) of slip-stacked bilayers (numpy + ASE; no Qt).

The PEL is the energy of a bilayer as a function of the slip ``(Da, Db)`` of its top layer (Å
along â and b̂, the label convention of :mod:`stackview.core.labels`), on a regular
``N × N`` grid over one cell: grid point ``(i, j)`` is the slip ``D = (i/N)·a + (j/N)·b``, i.e.
``Da = i·|a|/N``, ``Db = j·|b|/N``. At each point the top layer is slid rigidly in the plane; the
atoms' z coordinates are then relaxed (``relax="z"``, in-plane coordinates fixed) or left as
built at the material's interlayer distance (``relax="none"``, a rigid scan). Energies are in
meV per cell (one bilayer unit cell, ``2 × n_atoms`` atoms) relative to the grid minimum.

Only one point per symmetry orbit is computed. The reduction uses the symmetries that leave the
*energy* invariant: lattice periodicity, the monolayer's in-plane point operations ``D → R·D``,
and its z-flipping operations (σh for MoS2), which swap the layers and give ``D → −R·D``. The
labels' layer-swap equivalence ``D ≡ −D`` is an *imaging* symmetry (both stacks project alike);
it is an energy symmetry only when the monolayer has a z-flip with ``R = 1`` (MoS2, not ReS2 or
ReSe2). The landscape therefore always covers the full cell, and :meth:`Landscape.energy_at` can
report both stacks a label stands for.

Any ASE calculator can be used; the default, ``"chgnet+d3"``, is CHGNet (universal potential
whose weights ship inside its PyPI package) plus the DFT-D3(BJ) dispersion correction of the
``dftd3`` package with PBE parameters (CHGNet is fitted to PBE/PBE+U data without dispersion;
without D3 there is no interlayer binding). Both are optional dependencies
(``pip install 'stackview[pel]'``), imported only when that calculator is built.

Files: a landscape is a CSV grid (``Da_A, Db_A, frac_a, frac_b, energy_meV, spacing_A``) plus a
JSON provenance sidecar with the same stem (calculator, package versions and licences, grid,
relaxation settings, the command that made it). Shipped landscapes live in
``stackview/resources/pel/``; computed or imported ones are cached per material in ``<user data>/pel/``. :func:`import_csv`
reads a user's own DFT grid. Plotting lives in :mod:`stackview.analysis.pel_plot`.

This module must not import Qt; torch, CHGNet and dftd3 are imported only inside the default
calculator factory.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stackview.engine.jobs import CancelToken, ProgressCallback, null_progress
from stackview.errors import UsageError
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.materials import Material, get_material

log = logging.getLogger(__name__)

#: format tag written into every provenance JSON
PEL_FORMAT = "stackview-pel/1"
#: calculator names understood by :func:`make_calculator`
CALCULATORS = ("chgnet+d3", "chgnet")
RELAX_MODES = ("z", "none")
#: default grid points per cell side
DEFAULT_GRID = 12
_CSV_HEADER = ("Da_A", "Db_A", "frac_a", "frac_b", "energy_meV", "spacing_A")
_LICENCES = {"chgnet": "BSD-3-Clause (Modified BSD)", "dftd3": "LGPL-3.0-or-later",
             "ase": "LGPL-2.1-or-later", "torch": "BSD-3-Clause"}


# --- settings and result ---------------------------------------------------------------------
@dataclass(frozen=True)
class PelSettings:
    """How a landscape is computed.

    Attributes
    ----------
    grid
        Grid points per cell side (N; the grid is N × N over one cell).
    relax
        ``"z"``: relax the z coordinates of all atoms (in-plane fixed) at every slip;
        ``"none"``: rigid layers at ``interlayer_A``.
    interlayer_A
        Starting (``"z"``) or fixed (``"none"``) mid-plane distance (Å); default: the
        material's.
    fmax_eV_A
        Force convergence of the z relaxation (eV/Å, z components only).
    max_steps
        Most optimiser steps per point.
    vacuum_A
        Vacuum between periodic images of the bilayer along z (Å).
    """

    grid: int = DEFAULT_GRID
    relax: str = "z"
    interlayer_A: float | None = None
    fmax_eV_A: float = 0.02
    max_steps: int = 200
    vacuum_A: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.grid, int | np.integer) or not (2 <= self.grid <= 96):
            raise UsageError(f"the PEL grid must be a whole number from 2 to 96, not {self.grid}")
        if self.relax not in RELAX_MODES:
            raise UsageError(f"the relaxation must be 'z' or 'none', not {self.relax!r}")
        if self.interlayer_A is not None and not (2.0 <= self.interlayer_A <= 20.0):
            raise UsageError(f"the interlayer distance {self.interlayer_A:g} Å is out of range "
                             "(2 to 20 Å)")
        if not (1e-4 <= self.fmax_eV_A <= 1.0):
            raise UsageError(f"fmax {self.fmax_eV_A:g} eV/Å must be between 0.0001 and 1")
        if not (1 <= self.max_steps <= 10000):
            raise UsageError(f"max_steps {self.max_steps} must be between 1 and 10000")
        if not (8.0 <= self.vacuum_A <= 100.0):
            raise UsageError(f"the vacuum {self.vacuum_A:g} Å must be between 8 and 100 Å")


@dataclass(frozen=True, eq=False)
class Landscape:
    """A PEL on a regular grid over one cell.

    Attributes
    ----------
    material
        The material (cell vectors define Da, Db).
    energy_meV
        Energies (meV per cell, minimum 0), shape ``(Na, Nb)``; ``[i, j]`` is the slip
        ``Da = i·|a|/Na``, ``Db = j·|b|/Nb``.
    spacing_A
        Mid-plane interlayer distance at each point (Å), same shape (NaN where unknown).
    provenance
        JSON-able record of how the landscape was made (see module docstring).
    """

    material: Material
    energy_meV: np.ndarray
    spacing_A: np.ndarray
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        e = np.asarray(self.energy_meV, dtype=float)
        if e.ndim != 2 or min(e.shape) < 2 or not np.all(np.isfinite(e)):
            raise UsageError("a landscape needs a finite 2-D energy grid of at least 2 × 2 points")
        s = np.full(e.shape, np.nan) if self.spacing_A is None else np.asarray(self.spacing_A,
                                                                                dtype=float)
        if s.shape != e.shape:
            raise UsageError("the spacing grid must have the shape of the energy grid")
        object.__setattr__(self, "energy_meV", e - e.min())
        object.__setattr__(self, "spacing_A", s)

    @property
    def shape(self) -> tuple[int, int]:
        return self.energy_meV.shape

    @property
    def frac_a(self) -> np.ndarray:
        return np.arange(self.shape[0]) / self.shape[0]

    @property
    def frac_b(self) -> np.ndarray:
        return np.arange(self.shape[1]) / self.shape[1]

    @property
    def span_meV(self) -> float:
        return float(self.energy_meV.max())

    def grid_arrays(self, closed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Da_A, Db_A, energy_meV)`` as 2-D arrays (indexing ``[i, j]``, i along a).

        With ``closed=True`` the periodic copies at ``Da = |a|`` and ``Db = |b|`` are appended,
        so the arrays cover the whole cell (for plotting).
        """
        fa, fb, e = self.frac_a, self.frac_b, self.energy_meV
        if closed:
            fa, fb = np.append(fa, 1.0), np.append(fb, 1.0)
            e = np.pad(e, ((0, 1), (0, 1)), mode="wrap")
        da, db = np.meshgrid(fa * self.material.a_A, fb * self.material.b_A, indexing="ij")
        return da, db, e

    def energy_at(self, slips_A, swap: str = "min") -> np.ndarray:
        """Energy (meV per cell) at slips ``(..., 2)`` (Å), periodic bilinear interpolation.

        ``swap`` says what a slip label stands for: ``"none"`` the stack with slip D itself;
        ``"min"``/``"mean"`` the lower/mean energy of D and its layer swap −D (an image
        cannot tell them apart; they are equal when −D is an energy symmetry, as for MoS2).
        """
        if swap not in ("none", "min", "mean"):
            raise UsageError(f"swap must be 'none', 'min' or 'mean', not {swap!r}")
        d = np.asarray(slips_A, dtype=float)
        if d.shape[-1] != 2:
            raise UsageError("slips must be pairs (Da, Db) in Å")
        e = self._interp(d)
        if swap == "none":
            return e
        e2 = self._interp(-d)
        return np.minimum(e, e2) if swap == "min" else (e + e2) / 2

    def _interp(self, d: np.ndarray) -> np.ndarray:
        na, nb = self.shape
        u = (d[..., 0] / self.material.a_A % 1.0) * na
        v = (d[..., 1] / self.material.b_A % 1.0) * nb
        i0, j0 = np.floor(u).astype(int), np.floor(v).astype(int)
        tu, tv = u - i0, v - j0
        e = self.energy_meV
        i0, j0 = i0 % na, j0 % nb
        i1, j1 = (i0 + 1) % na, (j0 + 1) % nb
        return ((1 - tu) * (1 - tv) * e[i0, j0] + tu * (1 - tv) * e[i1, j0]
                + (1 - tu) * tv * e[i0, j1] + tu * tv * e[i1, j1])

    def minima(self, tol_meV: float = 1e-6) -> np.ndarray:
        """Local minima of the periodic grid as rows ``(Da_A, Db_A, energy_meV)``, lowest first.

        A point is a local minimum when none of its 8 periodic neighbours is lower (within
        ``tol_meV``); plateaus give each of their points.
        """
        e = self.energy_meV
        is_min = np.ones(e.shape, dtype=bool)
        for di, dj in itertools.product((-1, 0, 1), repeat=2):
            if di or dj:
                is_min &= e <= np.roll(e, (di, dj), axis=(0, 1)) + tol_meV
        i, j = np.nonzero(is_min)
        rows = np.column_stack([i / e.shape[0] * self.material.a_A,
                                j / e.shape[1] * self.material.b_A, e[i, j]])
        return rows[np.argsort(rows[:, 2], kind="stable")]

    def value_at_frac(self, frac_a: float, frac_b: float) -> float:
        """Energy (meV) at the grid point nearest to the fractional slip (checks it is on-grid)."""
        na, nb = self.shape
        i, j = frac_a * na, frac_b * nb
        if abs(i - round(i)) > 1e-6 or abs(j - round(j)) > 1e-6:
            raise UsageError(f"({frac_a:g}, {frac_b:g}) is not a point of the {na}×{nb} grid")
        return float(self.energy_meV[round(i) % na, round(j) % nb])


# --- symmetry --------------------------------------------------------------------------------
def slip_symmetry_ops(material: Material | str, tol_A: float = 0.02) -> list[np.ndarray]:
    """Integer matrices F (fractional, row-vector convention ``f' = f @ F``) that leave the PEL
    of ``material``'s bilayer invariant, identity first.

    An in-plane orthogonal operation R of the monolayer (with translation) gives
    ``E(D) = E(R·D)``; one that also flips z gives ``E(D) = E(−R·D)`` (the flip swaps the
    layers). Operations are tested on the basis atoms (species, in-plane position and z).
    """
    material = get_material(material)
    cell = material.cell_2d
    inv = np.linalg.inv(cell)
    xy = material.frac_ab @ cell
    z = material.z_A
    sym = np.array(material.symbols)
    candidates = []
    for k in range(12):  # rotations by multiples of 30°, and mirrors
        t = math.radians(30 * k)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        mir = np.array([[math.cos(t), math.sin(t)], [math.sin(t), -math.cos(t)]])
        candidates += [rot, mir]
    ops: list[np.ndarray] = []
    for r in candidates:
        frac_op = cell @ r.T @ inv  # f' = f @ frac_op for D' = R·D
        if not np.allclose(frac_op, np.round(frac_op), atol=1e-3):
            continue
        for flip in (1.0, -1.0):
            if _maps_basis(xy @ r.T, flip * z, xy, z, sym, cell, inv, tol_A):
                f = np.round(flip * frac_op).astype(int)
                if not any(np.array_equal(f, o) for o in ops):
                    ops.append(f)
    ident = np.eye(2, dtype=int)
    ops.sort(key=lambda o: not np.array_equal(o, ident))
    return ops


def _maps_basis(new_xy, new_z, xy, z, sym, cell, inv, tol_A) -> bool:
    for j in np.nonzero(sym == sym[0])[0]:
        txy = xy[j] - new_xy[0]
        tz = z[j] - new_z[0]
        ok = True
        for i in range(len(sym)):
            same = sym == sym[i]
            d = (xy[same] - (new_xy[i] + txy)) @ inv
            d = (d - np.round(d)) @ cell
            dist = np.sqrt((d**2).sum(axis=1) + (z[same] - (new_z[i] + tz)) ** 2)
            if dist.min() > tol_A:
                ok = False
                break
        if ok:
            return True
    return False


def grid_orbits(shape: tuple[int, int], ops: list[np.ndarray]) -> np.ndarray:
    """Representative flat index of every grid point under ``ops`` (array of shape ``shape``).

    Operations that do not map the grid onto itself (e.g. a 3-fold rotation on an N×M grid
    with N ≠ M) are ignored.
    """
    na, nb = shape
    parent = np.arange(na * nb)

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for f in ops:
        ok = True
        ij = np.array(list(itertools.product(range(na), range(nb))), dtype=float)
        frac = ij / [na, nb]
        new = (frac @ f) * [na, nb]
        if not np.allclose(new, np.round(new), atol=1e-9):
            ok = False
        if not ok:
            continue
        new = np.round(new).astype(int) % [na, nb]
        for k, (i2, j2) in enumerate(new):
            a, b = find(k), find(i2 * nb + j2)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.array([find(k) for k in range(na * nb)]).reshape(shape)


# --- structures and calculators --------------------------------------------------------------
def bilayer_cell(material: Material | str, slip_A, interlayer_A: float | None = None,
                 vacuum_A: float = 20.0):
    """Periodic ``ase.Atoms`` of the slipped bilayer: bottom layer (tag 0) and the top layer
    (tag 1) translated by ``D = Da·â + Db·b̂`` (Å) and raised by ``interlayer_A``; periodic in
    the plane, ``vacuum_A`` of vacuum along z."""
    from ase import Atoms

    material = get_material(material)
    d = material.interlayer_A if interlayer_A is None else float(interlayer_A)
    bottom = material.layer_positions()
    top = bottom.copy()
    top[:, :2] += material.slip_to_cartesian(np.asarray(slip_A, dtype=float))
    top[:, 2] += d
    pos = np.vstack([bottom, top])
    pos[:, 2] += vacuum_A / 2 + material.thickness_A / 2
    cell = np.zeros((3, 3))
    cell[:2, :2] = material.cell_2d
    cell[2, 2] = d + material.thickness_A + vacuum_A
    n = material.n_atoms
    return Atoms(symbols=list(material.symbols) * 2, positions=pos, cell=cell,
                 pbc=(True, True, False), tags=[0] * n + [1] * n)


def make_calculator(name: str = "chgnet+d3", device: str = "cpu"):
    """Build a named calculator: ``"chgnet+d3"`` (CHGNet + DFT-D3(BJ), PBE) or ``"chgnet"``.

    Raises a :class:`UsageError` naming the missing package when CHGNet or dftd3 is absent.
    """
    if name not in CALCULATORS:
        raise UsageError(f"unknown PEL calculator {name!r}; choose one of {', '.join(CALCULATORS)}"
                         " or pass an ASE calculator")
    try:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ModuleNotFoundError as exc:
        raise UsageError("the PEL calculator needs CHGNet: install it with "
                         "pip install 'stackview[pel]' (or pass your own ASE calculator)") from exc
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chg = CHGNetCalculator(model=CHGNet.load(verbose=False), use_device=device)
    if name == "chgnet":
        return chg
    try:
        from dftd3.ase import DFTD3
    except ModuleNotFoundError as exc:
        raise UsageError("the D3 dispersion correction needs the dftd3 package: install it "
                         "with pip install 'stackview[pel]'") from exc
    from ase.calculators.mixing import SumCalculator

    return SumCalculator([chg, DFTD3(method="PBE", damping="d3bj")])


def calculator_provenance(name: str) -> dict:
    """Versions and licences of the packages behind a named calculator."""
    from importlib import metadata

    pkgs = ["chgnet", "torch", "ase"] + (["dftd3"] if name == "chgnet+d3" else [])
    out = {}
    for p in pkgs:
        try:
            version = metadata.version(p)
        except metadata.PackageNotFoundError:
            version = None
        out[p] = {"version": version, "licence": _LICENCES.get(p, "")}
    info = {"name": name, "packages": out,
            "potential": "CHGNet universal potential (weights shipped in the chgnet package; "
                         "fitted to PBE/PBE+U Materials Project data)"}
    if name == "chgnet+d3":
        info["dispersion"] = "DFT-D3 with Becke-Johnson damping, PBE parameters (dftd3)"
    else:
        info["dispersion"] = None
    try:  # the pretrained weights CHGNet.load() picks by default
        import inspect

        from chgnet.model import CHGNet

        default = inspect.signature(CHGNet.load).parameters["model_name"].default
        info["model"] = f"CHGNet {default} (pretrained weights shipped in the chgnet wheel)"
    except (ImportError, KeyError, ValueError, TypeError):
        pass
    return info


# --- one point ---------------------------------------------------------------------------------
def point_energy(material: Material, slip_A, calc, settings: PelSettings) -> dict:
    """Energy (eV per cell), relaxed mid-plane spacing (Å) and optimiser info at one slip."""
    atoms = bilayer_cell(material, slip_A, settings.interlayer_A, settings.vacuum_A)
    atoms.calc = calc
    steps, converged = 0, True
    if settings.relax == "z":
        from ase.constraints import FixCartesian
        from ase.optimize import BFGS

        atoms.set_constraint(FixCartesian(range(len(atoms)), mask=(True, True, False)))
        opt = BFGS(atoms, logfile=None)
        converged = bool(opt.run(fmax=settings.fmax_eV_A, steps=settings.max_steps))
        steps = int(opt.nsteps)
    energy = float(atoms.get_potential_energy())
    tags = atoms.get_tags()
    z = atoms.positions[:, 2]
    spacing = float(z[tags == 1].mean() - z[tags == 0].mean())
    return {"energy_eV": energy, "spacing_A": spacing, "steps": steps, "converged": converged}


_WORKER: dict = {}


def _worker_init(calculator, threads: int) -> None:
    _set_torch_threads(threads)
    warnings.simplefilter("ignore")
    _WORKER["calc"] = _build(calculator)


def _build(calculator):
    if isinstance(calculator, str):
        return make_calculator(calculator)
    if callable(calculator) and not hasattr(calculator, "get_potential_energy"):
        return calculator()
    return calculator


def _worker_point(material: Material, slip_A, settings: PelSettings) -> dict:
    return point_energy(material, slip_A, _WORKER["calc"], settings)


# --- the job -----------------------------------------------------------------------------------
def compute_landscape(
    material: Material | str,
    settings: PelSettings | None = None,
    calculator="chgnet+d3",
    workers: int = 1,
    threads: int = 1,
    points: list[tuple[int, int]] | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
    command: str | None = None,
) -> Landscape:
    """Compute the PEL of ``material``'s slip-stacked bilayer (see module docstring).

    Parameters
    ----------
    material
        Material or its name.
    settings
        Grid and relaxation (default :class:`PelSettings`).
    calculator
        A name from :data:`CALCULATORS`, an ASE calculator, or a zero-argument factory that
        returns one (needed for ``workers > 1`` with a custom calculator: it must be picklable,
        e.g. a module-level function).
    workers
        Processes evaluating grid points in parallel (each builds its own calculator).
    threads
        Torch threads per worker (1 is best: more threads per small cell only contend).
    points
        Only these grid indices ``(i, j)`` (and their symmetry images) are computed; the rest
        of the grid is NaN — for quick checks; :class:`Landscape` needs a complete grid, so the
        result is then a :class:`PartialLandscape` (same attributes, NaN where not computed).
    progress, cancel
        Job protocol of :mod:`stackview.engine.jobs`.
    command
        The command line recorded in the provenance.

    Returns
    -------
    Landscape
        Energies in meV per cell relative to the minimum.
    """
    material = get_material(material)
    settings = settings or PelSettings()
    cancel = cancel or CancelToken()
    if workers < 1 or workers > 256:
        raise UsageError(f"workers must be between 1 and 256, not {workers}")
    if threads < 1 or threads > 256:
        raise UsageError(f"threads must be between 1 and 256, not {threads}")
    n = settings.grid
    ops = slip_symmetry_ops(material)
    reps = grid_orbits((n, n), ops)
    wanted = np.unique(reps)
    if points is not None:
        chosen = {int(reps[i % n, j % n]) for i, j in points}
        wanted = np.array(sorted(chosen))
    if isinstance(calculator, str):
        calc_info = calculator_provenance(calculator)
    else:
        calc_info = {"name": getattr(calculator, "__name__", type(calculator).__name__),
                     "custom": True}
    slips = {int(k): material.cartesian_to_slip(
        np.array([k // n, k % n]) / n @ material.cell_2d) for k in wanted}
    results: dict[int, dict] = {}
    total = len(wanted)
    progress(0, total, "starting")
    t0 = time.perf_counter()
    if workers == 1:
        with _torch_threads(threads), warnings.catch_warnings():
            calc = _build(calculator)
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
            for done, k in enumerate(wanted, start=1):
                cancel.check()
                results[int(k)] = point_energy(material, slips[int(k)], calc, settings)
                progress(done, total, f"point {done}/{total}")
    else:
        if not isinstance(calculator, str) and hasattr(calculator, "get_potential_energy"):
            raise UsageError("parallel workers need a calculator name or factory, not an "
                             "instance (each worker builds its own)")
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(workers, total), mp_context=ctx,
                                    initializer=_worker_init,
                                    initargs=(calculator, threads)) as pool:
            futures = {pool.submit(_worker_point, material, slips[int(k)], settings): int(k)
                       for k in wanted}
            try:
                for done, fut in enumerate(cf.as_completed(futures), start=1):
                    if cancel.cancelled:
                        break
                    results[futures[fut]] = fut.result()
                    progress(done, total, f"point {done}/{total}")
            finally:
                if cancel.cancelled or len(results) < total:
                    pool.shutdown(wait=True, cancel_futures=True)
            cancel.check()
    seconds = time.perf_counter() - t0
    energy_eV = np.full((n, n), np.nan)
    spacing = np.full((n, n), np.nan)
    for idx, rep in np.ndenumerate(reps):
        r = results.get(int(rep))
        if r is not None:
            energy_eV[idx] = r["energy_eV"]
            spacing[idx] = r["spacing_A"]
    unconverged = sum(not r["converged"] for r in results.values())
    e_min = float(np.nanmin(energy_eV))
    provenance = {
        "format": PEL_FORMAT,
        "source": "computed",
        "material": _material_record(material),
        "grid": [n, n],
        "energy_unit": f"meV per cell ({2 * material.n_atoms} atoms, area "
                       f"{material.area_A2:.4f} Å²), relative to the grid minimum",
        "minimum_energy_eV_per_cell": e_min,
        "relax": settings.relax,
        "relaxation": {
            "mode": "z coordinates of all atoms relaxed, in-plane fixed (BFGS)"
            if settings.relax == "z" else "rigid layers, no relaxation",
            "fmax_eV_A": settings.fmax_eV_A, "max_steps": settings.max_steps,
            "interlayer_start_A": settings.interlayer_A or material.interlayer_A,
            "unconverged_points": unconverged,
            "steps_total": sum(r["steps"] for r in results.values()),
        },
        "vacuum_A": settings.vacuum_A,
        "symmetry": {"operations": [o.tolist() for o in ops],
                     "points_computed": total, "points_in_grid": n * n},
        "calculator": calc_info,
        "workers": workers, "threads_per_worker": threads,
        "seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "stackview_version": _version(),
        "command": command,
    }
    notes = []
    start = settings.interlayer_A or material.interlayer_A
    if settings.relax == "z" and np.nanmax(spacing) > start + 2.0:
        notes.append(f"the layers drifted apart (spacing up to {np.nanmax(spacing):.2f} Å from "
                     f"{start:.2f} Å): the calculator does not bind them, so the landscape is "
                     "not meaningful (add a dispersion correction, or use relax='none')")
        log.warning(notes[-1])
    provenance["notes"] = notes
    if unconverged:
        log.warning("%d of %d PEL points did not converge in %d steps", unconverged, total,
                    settings.max_steps)
    energy_meV = (energy_eV - e_min) * 1000.0
    if points is not None:
        return PartialLandscape(material, energy_meV, spacing, provenance)
    return Landscape(material, energy_meV, spacing, provenance)


@contextlib.contextmanager
def _torch_threads(threads: int):
    """Run with ``threads`` torch threads, restoring the caller's setting afterwards."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _set_torch_threads(threads: int) -> None:
    """Set torch's thread count when torch is importable (the default calculator uses it)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


@dataclass(frozen=True, eq=False)
class PartialLandscape:
    """Result of :func:`compute_landscape` with ``points``: NaN where not computed."""

    material: Material
    energy_meV: np.ndarray
    spacing_A: np.ndarray
    provenance: dict

    def value_at_frac(self, frac_a: float, frac_b: float) -> float:
        n = self.energy_meV.shape[0]
        return float(self.energy_meV[round(frac_a * n) % n, round(frac_b * n) % n])


def _material_record(material: Material) -> dict:
    return {"name": material.name, "formula": material.formula,
            "a_vec_A": [round(float(v), 6) for v in material.a_vec_A],
            "b_vec_A": [round(float(v), 6) for v in material.b_vec_A],
            "atoms_per_layer": material.n_atoms, "structure_source": material.source}


def _version() -> str:
    from stackview import __version__

    return __version__


# --- files -------------------------------------------------------------------------------------
def write_landscape(landscape: Landscape, csv_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the CSV grid and its JSON provenance (same stem, ``.json``) atomically."""
    csv_path = Path(csv_path)
    if csv_path.suffix.lower() != ".csv":
        raise UsageError(f"the landscape file must end in .csv, not {csv_path.name}")
    da, db, e = landscape.grid_arrays()
    fa, fb = np.meshgrid(landscape.frac_a, landscape.frac_b, indexing="ij")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_CSV_HEADER)
        for idx in np.ndindex(e.shape):
            s = landscape.spacing_A[idx]
            w.writerow([f"{da[idx]:.6f}", f"{db[idx]:.6f}", f"{fa[idx]:.6f}", f"{fb[idx]:.6f}",
                        f"{e[idx]:.4f}", "" if not np.isfinite(s) else f"{s:.4f}"])
    json_path = csv_path.with_suffix(".json")
    prov = dict(landscape.provenance)
    prov.setdefault("format", PEL_FORMAT)
    prov.setdefault("material", _material_record(landscape.material))
    prov["summary"] = summarize(landscape)
    write_text_atomic(json_path, json.dumps(prov, indent=2, ensure_ascii=False) + "\n")
    return csv_path, json_path


def summarize(landscape: Landscape) -> dict:
    """Span, minima and the energies at the high-symmetry slips (meV per cell)."""
    e = landscape.energy_meV
    mins = landscape.minima()
    out = {"span_meV": round(float(e.max()), 3),
           "maximum_at_A": [round(float(v), 4) for v in
                            _slip_of(landscape, np.unravel_index(np.argmax(e), e.shape))],
           "minima": [[round(float(v), 4) for v in row] for row in mins[:12]]}
    fixed = {}
    for name, (fa, fb) in {"(0,0)": (0, 0), "(1/2,0)": (0.5, 0), "(0,1/2)": (0, 0.5),
                           "(1/2,1/2)": (0.5, 0.5), "(1/3,2/3)": (1 / 3, 2 / 3),
                           "(2/3,1/3)": (2 / 3, 1 / 3)}.items():
        with contextlib.suppress(UsageError):
            fixed[name] = round(landscape.value_at_frac(fa, fb), 3)
    out["energy_at_frac_meV"] = fixed
    out["caveats"] = caveats(landscape)
    s = landscape.spacing_A
    if np.any(np.isfinite(s)):
        out["spacing_range_A"] = [round(float(np.nanmin(s)), 4), round(float(np.nanmax(s)), 4)]
    return out


def caveats(landscape: Landscape, tol_A: float = 0.3) -> list[str]:
    """Warnings a user should see with a landscape (one sentence each).

    The provenance's notes, plus a check of the relaxed interlayer spacing against the
    material's reference distance: a spacing shorter by more than ``tol_A`` means the potential
    overbinds the layers, so the energy magnitudes are only qualitative (ReS2 and ReSe2 with
    CHGNet + D3); a longer one means it underbinds.
    """
    out = list((landscape.provenance or {}).get("notes") or [])
    s = landscape.spacing_A
    if (landscape.provenance or {}).get("relax") == "z" and np.any(np.isfinite(s)):
        ref = landscape.material.interlayer_A
        low = float(np.nanmin(s))
        high = float(np.nanmax(s))
        if low < ref - tol_A:
            out.append(f"the relaxed interlayer spacing ({low:.2f}–{high:.2f} Å) is shorter than "
                       f"the reference {ref:.2f} Å: the potential overbinds the layers, so treat "
                       "the energy magnitudes as qualitative")
        elif low > ref + tol_A and not out:
            out.append(f"the relaxed interlayer spacing ({low:.2f}–{high:.2f} Å) is longer than "
                       f"the reference {ref:.2f} Å: the potential underbinds the layers, so treat "
                       "the energy magnitudes as qualitative")
    return out


def _slip_of(landscape: Landscape, idx) -> tuple[float, float]:
    return (idx[0] / landscape.shape[0] * landscape.material.a_A,
            idx[1] / landscape.shape[1] * landscape.material.b_A)


def read_landscape(csv_path: str | os.PathLike, material: Material | str | None = None
                   ) -> Landscape:
    """Read a landscape written by :func:`write_landscape` (CSV + JSON sidecar when present).

    The material comes from the sidecar unless given. A CSV without a sidecar is imported as a
    user grid (see :func:`import_csv`).
    """
    csv_path = Path(csv_path)
    json_path = csv_path.with_suffix(".json")
    prov = {}
    if json_path.exists():
        try:
            prov = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"the provenance file {json_path} is not valid JSON") from exc
        if prov.get("format") != PEL_FORMAT:
            raise UsageError(f"{json_path} is not a stackview PEL provenance file")
    name = (prov.get("material") or {}).get("name")
    if material is not None and name and get_material(material).name != name:
        raise UsageError(f"{csv_path.name} is a landscape for {name}, not for "
                         f"{get_material(material).name}")
    if material is None:
        if not name:
            raise UsageError(f"{csv_path} has no provenance file naming its material; "
                             "give the material")
        material = name
    land = import_csv(csv_path, material)
    if prov:
        object.__setattr__(land, "provenance", prov)
    return land


def import_csv(csv_path: str | os.PathLike, material: Material | str) -> Landscape:
    """Import a user's PEL grid from CSV, validated.

    The CSV needs a header naming the slip columns with their unit — ``Da_A, Db_A`` (Å along â
    and b̂) or ``frac_a, frac_b`` (fractions of the cell vectors) — and one energy column,
    ``energy_meV`` or ``energy_eV`` (per cell; any zero). Points must form a regular grid over
    the cell (``Na × Nb`` points at ``i/Na, j/Nb``; copies at fraction 1 are dropped); points
    missing from the grid are filled from symmetry-equivalent points (for MoS2 half the cell or
    less suffices), and a grid with points still missing is rejected. Extra columns (e.g.
    ``spacing_A``) are kept when known. Errors are one sentence.
    """
    material = get_material(material)
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{csv_path.name} is not a text CSV file") from exc
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) < 2:
        raise UsageError(f"{csv_path.name} has no data rows (a header and a grid are needed)")
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader)]
    cols = {h.lower(): k for k, h in enumerate(header)}
    if "da_a" in cols and "db_a" in cols:
        ka, kb, scale = cols["da_a"], cols["db_a"], (1 / material.a_A, 1 / material.b_A)
    elif "frac_a" in cols and "frac_b" in cols:
        ka, kb, scale = cols["frac_a"], cols["frac_b"], (1.0, 1.0)
    else:
        raise UsageError(f"{csv_path.name} must have slip columns with their unit: Da_A and Db_A "
                         "(Å) or frac_a and frac_b (cell fractions)")
    if "energy_mev" in cols:
        ke, e_scale = cols["energy_mev"], 1.0
    elif "energy_ev" in cols:
        ke, e_scale = cols["energy_ev"], 1000.0
    else:
        raise UsageError(f"{csv_path.name} must have an energy column with its unit: "
                         "energy_meV or energy_eV (per cell)")
    ks = cols.get("spacing_a")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        try:
            fa = float(row[ka]) * scale[0]
            fb = float(row[kb]) * scale[1]
            e = float(row[ke]) * e_scale
            s = float(row[ks]) if ks is not None and ks < len(row) and row[ks].strip() else np.nan
        except (ValueError, IndexError) as exc:
            raise UsageError(f"row {lineno} of {csv_path.name} is not a list of numbers") from exc
        if not (math.isfinite(fa) and math.isfinite(fb) and math.isfinite(e)):
            raise UsageError(f"row {lineno} of {csv_path.name} has a value that is not finite")
        rows.append((fa, fb, e, s))
    arr = np.array(rows)
    if np.any(arr[:, :2] < -1e-4) or np.any(arr[:, :2] > 1 + 1e-4):
        raise UsageError(f"slips in {csv_path.name} must lie within one cell (0 ≤ Da < |a| = "
                         f"{material.a_A:.4f} Å, 0 ≤ Db < |b| = {material.b_A:.4f} Å)")
    na = _grid_count(arr[:, 0], "Da", csv_path.name)
    nb = _grid_count(arr[:, 1], "Db", csv_path.name)
    energy = np.full((na, nb), np.nan)
    spacing = np.full((na, nb), np.nan)
    for fa, fb, e, s in arr:
        copy = round(fa * na) == na or round(fb * nb) == nb  # periodic copy of fraction 0
        i, j = round(fa * na) % na, round(fb * nb) % nb
        if np.isfinite(energy[i, j]):
            if not copy and abs(energy[i, j] - e) > 1e-3:
                raise UsageError(f"{csv_path.name} gives two energies for the slip "
                                 f"({fa * material.a_A:.4f}, {fb * material.b_A:.4f}) Å")
            continue
        energy[i, j] = e
        spacing[i, j] = s
    missing = ~np.isfinite(energy)
    if missing.any():
        reps = grid_orbits((na, nb), slip_symmetry_ops(material))
        for idx in zip(*np.nonzero(missing), strict=True):
            same = (reps == reps[idx]) & np.isfinite(energy)
            if same.any():
                k = tuple(np.argwhere(same)[0])
                energy[idx], spacing[idx] = energy[k], spacing[k]
    missing = ~np.isfinite(energy)
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise UsageError(f"{csv_path.name} is not a complete regular {na}×{nb} grid: "
                         f"{int(missing.sum())} points are missing, e.g. Da = "
                         f"{i / na * material.a_A:.4f} Å, Db = {j / nb * material.b_A:.4f} Å")
    prov = {"format": PEL_FORMAT, "source": "imported", "imported_from": str(csv_path),
            "material": _material_record(material), "grid": [na, nb],
            "energy_unit": "meV per cell, relative to the grid minimum",
            "energy_column": header[ke], "relax": None, "calculator": {"name": "user data"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stackview_version": _version()}
    return Landscape(material, energy, spacing, prov)


def _grid_count(frac: np.ndarray, name: str, fname: str) -> int:
    """Number of grid points per cell side implied by the fractional coordinates."""
    values = np.unique(np.round(frac % 1.0, 6) % 1.0)
    if len(values) < 2:
        raise UsageError(f"{fname} has a single {name} value; a grid needs at least 2")
    steps = np.diff(np.append(values, 1.0 + values[0]))
    step = steps.min()
    n = round(1.0 / step) if step > 0 else 0
    if n < 2 or n > 1000 or np.any(np.abs(values * n - np.round(values * n)) > 1e-2):
        raise UsageError(f"the {name} values in {fname} are not on a regular grid over the cell "
                         f"(spacing |cell|/N from 0)")
    return int(n)


# --- cache -------------------------------------------------------------------------------------
def shipped_path(material: Material | str) -> Path:
    """Path of the landscape shipped in ``stackview/resources/pel/`` for a material (may not
    exist)."""
    from stackview.paths import RESOURCES_DIR

    return RESOURCES_DIR / "pel" / f"{get_material(material).name}.csv"


def user_path(material: Material | str) -> Path:
    """Path of the user's cached landscape of a material in the user data directory."""
    from stackview.paths import user_data_dir

    return user_data_dir() / "pel" / f"{get_material(material).name}.csv"


def cache_landscape(landscape: Landscape) -> Path:
    """Store a landscape as the user's landscape of its material; returns the CSV path."""
    return write_landscape(landscape, user_path(landscape.material))[0]


def load_landscape(source: str | os.PathLike | Material | None = None,
                   material: Material | str | None = None) -> Landscape:
    """The landscape to use: a CSV path, or the material's (user cache first, then shipped).

    Parameters
    ----------
    source
        A CSV path; or ``None``/``"auto"``/a material name to look the material's up.
    material
        The material (needed for a CSV without provenance, and for the look-up).
    """
    if source is not None and str(source) not in ("auto", "") and (
            str(source).lower().endswith(".csv") or Path(str(source)).exists()):
        path = Path(str(source))
        if not path.exists():
            raise UsageError(f"the landscape file {path} does not exist")
        return read_landscape(path, material)
    name = material if source in (None, "auto", "") else source
    if name is None:
        raise UsageError("give a material or a landscape CSV file")
    mat = get_material(name)
    for path in (user_path(mat), shipped_path(mat)):
        if path.exists():
            return read_landscape(path, mat)
    raise UsageError(f"no landscape for {mat.name} yet: compute one with "
                     f"stackview pel --material {mat.name}, or import your own CSV")


def slips_from_result(result) -> np.ndarray:
    """Slip labels (Å, rows ``(Da, Db)``) of every window of an analysis result."""
    smap = result.smap
    if tuple(smap.names[:2]) != ("Da_A", "Db_A") or len(smap.names) != 2:
        raise UsageError("the PEL overlay needs a bilayer slip analysis (Da, Db), "
                         f"not {', '.join(smap.names)}")
    pts = np.asarray(smap.points)
    d = pts[:, 2:4]
    return d[np.all(np.isfinite(d), axis=1)]


def landscape_for_bundle(source, bundle) -> Landscape:
    """The landscape for an analysis with ``bundle`` (checked up front: a bilayer slip model).

    ``source`` as in :func:`load_landscape`; the material is the model's.
    """
    card = bundle.card
    if card.task != "slip" or int(card.layers) != 2:
        raise UsageError(f"--pel needs a bilayer slip model, not the {card.layers}-layer "
                         f"{card.task} model {card.name}")
    landscape = load_landscape(source, card.material)
    if landscape.material.name != get_material(card.material).name:
        raise UsageError(f"the landscape is for {landscape.material.name}, but the model is for "
                         f"{card.material}")
    return landscape


def add_pel_to_figure(result, folder: str | os.PathLike, source: Landscape | str = "auto",
                      figure_format: str = "png") -> Path:
    """Redraw an analysis figure (written by ``write_results``) with a PEL scatter panel.

    ``source``: a :class:`Landscape`, or as in :func:`load_landscape` (the model's material).
    """
    from stackview.analysis.export import write_figure
    from stackview.analysis.pel_plot import pel_panel

    slips = slips_from_result(result)
    landscape = (source if isinstance(source, Landscape)
                 else load_landscape(source, result.bundle.card.material))
    folder = Path(folder)
    return write_figure(folder / f"figure.{figure_format}", result.image,
                        result.calibration.pixel_size_nm, result.smap, result.field,
                        result.interface, title=folder.name, pel=pel_panel(landscape, slips),
                        reliable=result.reliable,
                        reliability_reason=result.reliability_reason)


__all__ = [
    "CALCULATORS", "Landscape", "PEL_FORMAT", "PelSettings", "add_pel_to_figure",
    "bilayer_cell", "cache_landscape", "caveats", "compute_landscape", "grid_orbits", "import_csv",
    "landscape_for_bundle", "load_landscape", "make_calculator", "point_energy",
    "read_landscape", "shipped_path", "slip_symmetry_ops", "slips_from_result", "summarize",
    "user_path", "write_landscape",
]

"""Interlayer potential-energy landscape (PEL) of slip-stacked bilayers: the grid and its symmetry.

The PEL is the energy of a bilayer as a function of the slip ``(Da, Db)`` of its top layer (Å
along â and b̂, the label convention of :mod:`stackview.core.labels`), on a regular
``N × N`` grid over one cell: grid point ``(i, j)`` is the slip ``D = (i/N)·a + (j/N)·b``, i.e.
``Da = i·|a|/N``, ``Db = j·|b|/N``. At each point the top layer is slid rigidly in the plane; the
atoms' z coordinates are then relaxed (``relax="z"``, in-plane coordinates fixed) or left as
built at the material's interlayer distance (``relax="none"``, a rigid scan). Energies are in
meV per cell (one bilayer unit cell, ``2 × n_atoms`` atoms) relative to the grid minimum.

Two stacking families (:mod:`stackview.core.stacking`): ``"parallel"`` (top = bottom slid by
D; the 3R family of MoS2) and ``"antiparallel"`` (the top layer is the bottom one turned by 180°
about its metal atom — basis atom 0 — then slid by D; the 2H family, for materials whose
projected monolayer has no 2-fold axis). D is the metal of the top layer minus the metal of the
bottom one in both. Each family has its own landscape and file.

Only one point per symmetry orbit is computed. The reduction uses the symmetries that leave the
*energy* invariant: lattice periodicity, the monolayer's in-plane point operations ``D → R·D``,
and its z-flipping operations (σh for MoS2), which swap the layers. In the parallel family the
swap gives ``D → −R·D``; in the antiparallel family it gives ``D → R·D`` again (a swap exchanges
which layer is turned; turning the whole stack by 180° restores it), so ``D → −D`` is *not* used
there: for MoS2 the parallel group has 12 operations (±3m), the antiparallel one 6 (3m), and
AA′ (D = δ) and A′B (D = −δ) differ. In the antiparallel family only operations about the metal
atom itself (no fractional translation) are used; others would make the map affine. The
labels' layer-swap equivalence ``D ≡ −D`` of the parallel family is an *imaging* symmetry (both
stacks project alike); it is an energy symmetry only when the monolayer has a z-flip with
``R = 1`` (MoS2, not ReS2 or ReSe2). The landscape therefore always covers the full cell, and
:meth:`Landscape.energy_at` can report both stacks a label stands for.

Any ASE calculator can be used; the default, ``"chgnet+d3"``, is CHGNet (universal potential
whose weights ship inside its PyPI package) plus the DFT-D3(BJ) dispersion correction of the
``dftd3`` package with PBE parameters (CHGNet is fitted to PBE/PBE+U data without dispersion;
without D3 there is no interlayer binding). Both are optional dependencies
(``pip install 'stackview[pel]'``), imported only when that calculator is built.

Files: a landscape is a CSV grid (``Da_A, Db_A, frac_a, frac_b, energy_meV, spacing_A``) plus a
JSON provenance sidecar with the same stem (family, calculator, package versions and licences,
grid, relaxation settings, the command that made it). Shipped landscapes live in
``stackview/resources/pel/`` (``MoS2.csv`` parallel, ``MoS2_antiparallel.csv``); computed or
imported ones are cached per material and family in ``<user data>/pel/``.
:func:`stackview.pel.files.import_csv` reads a user's own DFT grid.

The package (no Qt): :mod:`.landscape` (settings, :class:`Landscape`, symmetry, summary),
:mod:`.compute` (calculators and the job), :mod:`.files` (CSV + JSON, import, cache),
:mod:`.plot` (heat map) and :mod:`.figure` (the PEL panel of an analysis figure); ``stackview pel``
is :mod:`.commands`. torch, CHGNet and dftd3 are imported only inside the default calculator
factory.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from stackview.core.stacking import FAMILIES, stacking_classes
from stackview.errors import UsageError
from stackview.materials import Material, get_material

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
    family
        ``"parallel"`` or ``"antiparallel"`` (the top layer turned by 180° about its metal atom).
    """

    grid: int = DEFAULT_GRID
    relax: str = "z"
    interlayer_A: float | None = None
    fmax_eV_A: float = 0.02
    max_steps: int = 200
    vacuum_A: float = 20.0
    family: str = "parallel"

    def __post_init__(self) -> None:
        check_family_name(self.family)
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
        JSON-able record of how the landscape was made (see module docstring); its ``family``
        (default ``"parallel"``) says which stacking family the grid is of.
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
        check_family_name(self.family)

    @property
    def family(self) -> str:
        """The stacking family of the grid: ``"parallel"`` or ``"antiparallel"``."""
        return str((self.provenance or {}).get("family") or "parallel")

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
        In the antiparallel family a swap of the layers keeps the label D, so ``swap`` changes
        nothing there.
        """
        if swap not in ("none", "min", "mean"):
            raise UsageError(f"swap must be 'none', 'min' or 'mean', not {swap!r}")
        d = np.asarray(slips_A, dtype=float)
        if d.shape[-1] != 2:
            raise UsageError("slips must be pairs (Da, Db) in Å")
        e = self._interp(d)
        if swap == "none" or self.family == "antiparallel":
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

        A point is a local minimum when none of its 16 periodic neighbours is lower (within
        ``tol_meV``): the 8 around it and the 8 a knight's move away, because on a hexagonal
        cell the descent from a saddle can run along (2, 1) in grid steps, a direction the 8
        nearest miss (WS2's 3R saddles were listed as minima). Plateaus give each of their
        points.
        """
        e = self.energy_meV
        is_min = np.ones(e.shape, dtype=bool)
        for di, dj in itertools.product((-2, -1, 0, 1, 2), repeat=2):
            if (di or dj) and {abs(di), abs(dj)} != {2} and {abs(di), abs(dj)} != {0, 2}:
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
def check_family_name(family: str) -> str:
    """A family name, validated (one sentence when it is neither family)."""
    if family not in FAMILIES:
        raise UsageError(f"the stacking family must be 'parallel' or 'antiparallel', not "
                         f"{family!r}")
    return family


def slip_symmetry_ops(material: Material | str, tol_A: float = 0.02,
                      family: str = "parallel") -> list[np.ndarray]:
    """Integer matrices F (fractional, row-vector convention ``f' = f @ F``) that leave the PEL
    of ``material``'s bilayer of the given family invariant, identity first.

    Parallel: an in-plane orthogonal operation R of the monolayer (with translation) gives
    ``E(D) = E(R·D)``; one that also flips z gives ``E(D) = E(−R·D)`` (the flip swaps the
    layers). Antiparallel: operations about the metal atom (basis atom 0, no translation), with
    or without the z flip, give ``E(D) = E(R·D)`` — never ``−R``. Operations are tested on the
    basis atoms (species, in-plane position and z).
    """
    from stackview.core.stacking import check_family

    check_family(material, family)
    material = get_material(material)
    anti = family == "antiparallel"
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
            new_xy = (xy - xy[0]) @ r.T + xy[0]  # about atom 0 (any centre will do, parallel)
            if _maps_basis(new_xy, flip * z, xy, z, sym, cell, inv, tol_A, fixed=anti):
                f = np.round((1.0 if anti else flip) * frac_op).astype(int)
                if not any(np.array_equal(f, o) for o in ops):
                    ops.append(f)
    ident = np.eye(2, dtype=int)
    ops.sort(key=lambda o: not np.array_equal(o, ident))
    return ops


def _maps_basis(new_xy, new_z, xy, z, sym, cell, inv, tol_A, fixed: bool = False) -> bool:
    """Whether the moved basis (new_xy, new_z) is the basis up to a translation (in-plane:
    none, modulo the lattice, when ``fixed``; along z: any)."""
    for j in np.nonzero(sym == sym[0])[0]:
        txy = xy[j] - new_xy[0]
        if fixed:
            frac = txy @ inv
            if not np.allclose(frac, np.round(frac), atol=1e-6):
                continue
            txy = np.zeros(2)
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



# --- summary -----------------------------------------------------------------------------------
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
    out["family"] = landscape.family
    marks = class_marks(landscape.material, landscape.family)
    if marks:
        slips = np.array([[fa * landscape.material.a_A, fb * landscape.material.b_A]
                          for _, fa, fb in marks])
        energies = landscape.energy_at(slips, swap="none")
        out["energy_at_class_meV"] = {name: round(float(e), 3)
                                      for (name, _, _), e in zip(marks, energies, strict=True)}
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


def class_marks(material: Material | str, family: str = "parallel"
                ) -> list[tuple[str, float, float]]:
    """The named stacking classes of a family at their slips in the PEL's cell, as rows
    ``(name, frac_a, frac_b)`` (fractions in [0, 1)); empty for materials without names.

    Names are those of :func:`stackview.core.stacking.stacking_classes` (He, Hummer & Franchini,
    PRB 89, 075409 (2014)); a class that is two stackings of equal energy related by the layer
    swap (``AB/BA`` at ±δ) is marked at both, ``AB`` at δ and ``BA`` at −δ. Names are written
    with ASCII primes (``AA'``); :func:`prime` turns them typographic.
    """
    out: list[tuple[str, float, float]] = []
    for c in stacking_classes(material, check_family_name(family)):
        fa, fb = (float(v) % 1.0 for v in c.frac)
        parts = c.name.split("/")
        out.append((parts[0], fa, fb))
        if len(parts) == 2:
            out.append((parts[1], (-fa) % 1.0, (-fb) % 1.0))
    return out


def prime(name: str) -> str:
    """A class name with typographic primes (AA′) for figures."""
    return name.replace("'", "\u2032")


def _slip_of(landscape: Landscape, idx) -> tuple[float, float]:
    return (idx[0] / landscape.shape[0] * landscape.material.a_A,
            idx[1] / landscape.shape[1] * landscape.material.b_A)



def _material_record(material: Material) -> dict:
    return {"name": material.name, "formula": material.formula,
            "a_vec_A": [round(float(v), 6) for v in material.a_vec_A],
            "b_vec_A": [round(float(v), 6) for v in material.b_vec_A],
            "atoms_per_layer": material.n_atoms, "structure_source": material.source}




def _version() -> str:
    from stackview import __version__

    return __version__

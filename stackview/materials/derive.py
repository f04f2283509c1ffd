"""Derive a monolayer's primitive cell (in the stackview convention) from any structure.

Two routes, chosen automatically:

* **periodic input** (CIF, POSCAR, extended xyz with a 3-D cell): the layer normal is the
  direction with the widest empty gap in the structure; the atoms of one layer and the two cell
  vectors in that plane give the monolayer.
* **finite input** (a flake or a supercell without usable periodicity, such as the paper's
  ``one_layer.xyz`` models): lattice translations are found directly as the shortest vectors that
  map the interior of the structure onto itself; the basis is the set of distinct positions
  modulo those translations.

Either way the cell is then Gauss-reduced and oriented (see :mod:`stackview.materials.cell`).
No Qt here.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from stackview.errors import UsageError
from stackview.materials.cell import Material, reduce_basis_2d

log = logging.getLogger(__name__)

#: typical van der Waals gap between the outer atom planes of adjacent layers (Å); used for the
#: default interlayer distance when a structure holds a single layer.
VDW_GAP_A = 3.0
#: gap along the normal (Å) that separates two layers
LAYER_GAP_A = 2.0


def material_from_atoms(
    atoms, name: str, interlayer_A: float | None = None, tol_A: float = 0.15,
    description: str = "", source: str = "",
) -> Material:
    """Build a :class:`Material` from an ASE ``Atoms`` holding one or more layers.

    Parameters
    ----------
    atoms
        ``ase.Atoms``: a periodic bulk/monolayer cell or a finite monolayer flake/supercell.
    name
        Name for the material.
    interlayer_A
        Mid-plane to mid-plane distance of adjacent layers (Å). Default: from the bulk
        stacking when the cell holds several layers, else layer thickness + 3 Å.
    tol_A
        Position tolerance (Å) for recognising lattice translations and duplicate atoms.
    """
    if len(atoms) == 0:
        raise UsageError("the structure contains no atoms")
    if atoms.pbc[0] and atoms.pbc[1] and not atoms.pbc[2]:
        # a 2-D periodic monolayer: give it a vacuum cell along z
        atoms = atoms.copy()
        atoms.center(vacuum=10.0, axis=2)
        atoms.pbc = True
    cell = np.asarray(atoms.cell.array, dtype=float)
    has_cell = bool(np.all(atoms.pbc)) and np.linalg.matrix_rank(cell) == 3
    periodic = False
    try:
        # the finite route also finds the primitive cell of a large periodic supercell, and it is
        # the only one that works for a flake in a placeholder box
        pos = np.asarray(atoms.positions, dtype=float)
        symbols = np.array(atoms.get_chemical_symbols())
        _check_single_layer(pos[:, 2])
        a2, b2 = _find_translations(pos, symbols, tol_A)
        spacing = None
    except UsageError:
        if not has_cell:
            raise
        periodic = True
        pos3, a2, b2, spacing = _layer_from_periodic(atoms, cell)
        symbols = np.array(atoms.get_chemical_symbols())[pos3[1]]
        pos = pos3[0]
    a2, b2 = reduce_basis_2d(a2, b2)
    # right-handed with a·b <= 0, by turning the layer over if needed (same crystal, other face)
    if a2[0] * b2[1] - a2[1] * b2[0] < 0:
        flip = np.array([1.0, -1.0, -1.0])
        pos = pos * flip
        a2 = a2 * flip[:2]
        b2 = b2 * flip[:2]
    angle = math.atan2(a2[1], a2[0])
    rot = np.array([[math.cos(-angle), -math.sin(-angle)], [math.sin(-angle), math.cos(-angle)]])
    a2 = rot @ a2
    b2 = rot @ b2
    a2[1] = 0.0
    xy = pos[:, :2] @ rot.T
    frac_ab, z_A, basis_symbols = _basis(xy, pos[:, 2], symbols, np.stack([a2, b2]), tol_A,
                                         interior=not periodic)
    thickness = float(z_A.max() - z_A.min())
    if interlayer_A is None:
        interlayer_A = spacing if spacing is not None else thickness + VDW_GAP_A
    return Material(
        name=name, a_vec_A=a2, b_vec_A=b2, symbols=tuple(basis_symbols), frac_ab=frac_ab,
        z_A=z_A, interlayer_A=float(interlayer_A), description=description, source=source,
    )


def _check_single_layer(z: np.ndarray) -> None:
    zs = np.sort(z)
    if np.any(np.diff(zs) > LAYER_GAP_A + 0.5):
        raise UsageError(
            "the structure holds more than one layer; give a single monolayer or a periodic "
            "bulk cell"
        )


def _layer_from_periodic(atoms, cell: np.ndarray):
    """Return ((positions of one layer rotated so the normal is z, indices), a, b, spacing)."""
    frac = atoms.get_scaled_positions(wrap=True)
    best = None
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        normal = np.cross(cell[i], cell[j])
        normal /= np.linalg.norm(normal)
        period = abs(cell[k] @ normal)
        h = np.sort((frac @ cell) @ normal % period)
        gaps = np.diff(np.concatenate([h, [h[0] + period]]))
        if best is None or gaps.max() > best[0]:
            best = (gaps.max(), i, j, k, normal, period)
    gap, i, j, k, normal, period = best
    if gap < LAYER_GAP_A:
        raise UsageError("the structure is not layered: no van der Waals gap was found")
    # rotation taking normal -> z and cell[i] -> the xz plane
    e1 = cell[i] - (cell[i] @ normal) * normal
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    R = np.stack([e1, e2, normal])
    pos = (frac @ cell) @ R.T
    h = pos[:, 2] % period
    order = np.argsort(h)
    hs = h[order]
    # split into layers at gaps wider than LAYER_GAP_A (cyclically)
    gaps = np.diff(np.concatenate([hs, [hs[0] + period]]))
    cuts = np.nonzero(gaps > LAYER_GAP_A)[0]
    n_layers = len(cuts)
    start = (cuts[-1] + 1) % len(hs)
    members = []
    idx = start
    while True:
        members.append(order[idx])
        if idx in cuts:
            break
        idx = (idx + 1) % len(hs)
    members = np.array(members)
    z = pos[members, 2]
    z = np.unwrap(z, period=period) if hasattr(np, "unwrap") else z
    # make the layer contiguous in z
    z0 = z[0]
    z = z0 + (z - z0 + period / 2) % period - period / 2
    layer = pos[members].copy()
    layer[:, 2] = z
    a2 = (cell[i] @ R.T)[:2]
    b2 = (cell[j] @ R.T)[:2]
    spacing = period / n_layers if n_layers > 1 else None
    return (layer, members), a2, b2, spacing


def _interior_mask(xy: np.ndarray, margin_A: float) -> np.ndarray:
    from scipy.spatial import ConvexHull

    hull = ConvexHull(xy)
    # equations: n·x + c <= 0 inside
    dist = xy @ hull.equations[:, :2].T + hull.equations[:, 2]
    return np.all(dist <= -margin_A, axis=1)


def _find_translations(pos: np.ndarray, symbols: np.ndarray, tol_A: float):
    from scipy.spatial import cKDTree

    xy = pos[:, :2]
    if len(pos) < 30:
        raise UsageError(
            "the structure is too small to find its lattice; give at least 4×4 unit cells "
            "or a periodic cell"
        )
    species, counts = np.unique(symbols, return_counts=True)
    ref_species = species[np.argmin(counts)]
    margin = 5.0
    inner = _interior_mask(xy, margin)
    if inner.sum() < 10:
        raise UsageError(
            "the structure is too small to find its lattice; give at least 4×4 unit cells "
            "or a periodic cell"
        )
    centre = xy[inner].mean(axis=0)
    same = np.nonzero(symbols == ref_species)[0]
    ref = same[np.argmin(np.linalg.norm(xy[same] - centre, axis=1))]
    vecs = xy[same] - xy[ref]
    lengths = np.linalg.norm(vecs, axis=1)
    order = [i for i in np.argsort(lengths) if lengths[i] > 0.5][:400]
    trees = {s: cKDTree(pos[symbols == s]) for s in species}
    valid = []
    for idx in order:
        t = np.array([*vecs[idx], 0.0])
        shifted = pos + t
        ok = inner & _interior_mask_points(xy, shifted[:, :2], margin)
        if ok.sum() < 5:
            continue
        matched = 0
        for s in species:
            sel = ok & (symbols == s)
            if sel.any():
                d, _ = trees[s].query(shifted[sel])
                matched += int((d < tol_A).sum())
        if matched / ok.sum() > 0.97:
            valid.append(vecs[idx])
            u, v = valid[0], valid[-1]
            if len(valid) >= 2 and abs(u[0] * v[1] - u[1] * v[0]) > 1e-3 * (u @ u):
                return valid[0], valid[-1]
    raise UsageError(
        "no lattice periodicity was found in the structure; is it a crystalline monolayer?"
    )


def _interior_mask_points(ref_xy: np.ndarray, xy: np.ndarray, margin_A: float) -> np.ndarray:
    from scipy.spatial import ConvexHull

    hull = ConvexHull(ref_xy)
    dist = xy @ hull.equations[:, :2].T + hull.equations[:, 2]
    return np.all(dist <= -margin_A, axis=1)


def _basis(xy, z, symbols, cell2: np.ndarray, tol_A: float, interior: bool):
    """Distinct atoms modulo the lattice: (frac (n, 2), z relative to mid-plane, symbols)."""
    if interior:
        mask = _interior_mask(xy, 3.0)
        xy, z, symbols = xy[mask], z[mask], symbols[mask]
    inv = np.linalg.inv(cell2)
    heavy = _heaviest(symbols)
    ref = np.nonzero(symbols == heavy)[0][0]
    frac = ((xy - xy[ref]) @ inv) % 1.0
    clusters: list[dict] = []
    for f, zz, s in zip(frac, z, symbols, strict=True):
        for c in clusters:
            if c["s"] != s or abs(c["z"][0] - zz) > 0.5:
                continue
            d = f - c["f"][0]
            d -= np.round(d)
            if np.linalg.norm(d @ cell2) < tol_A:
                c["f"].append(c["f"][0] + d)
                c["z"].append(zz)
                break
        else:
            clusters.append({"s": s, "f": [f.copy()], "z": [zz]})
    sizes = np.array([len(c["f"]) for c in clusters])
    keep = sizes >= 0.5 * sizes.max()
    if (~keep).any():
        log.warning("ignored %d sparse atom positions (defects or edges)", int((~keep).sum()))
    clusters = [c for c, k in zip(clusters, keep, strict=True) if k]
    frac_ab = np.array([np.mean(c["f"], axis=0) % 1.0 for c in clusters])
    frac_ab[np.isclose(frac_ab, 1.0, atol=1e-7)] = 0.0
    zs = np.array([np.mean(c["z"]) for c in clusters])
    zs = zs - 0.5 * (zs.max() + zs.min())
    syms = [c["s"] for c in clusters]
    order = sorted(range(len(syms)), key=lambda i: (-_z_number(syms[i]), zs[i], *frac_ab[i]))
    return frac_ab[order], zs[order], [syms[i] for i in order]


def _z_number(symbol: str) -> int:
    from ase.data import atomic_numbers

    return atomic_numbers[symbol]


def _heaviest(symbols) -> str:
    return max(set(symbols.tolist()), key=_z_number)

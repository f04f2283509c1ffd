"""Stack builders: slip-stacked bilayers/trilayers and twisted bilayers (numpy + ASE, no Qt).

Geometry conventions (all lengths in Å):

* The field of view is ``[0, fov_x] × [0, fov_y]``; atoms are generated over the field of view
  enlarged by ``margin_A`` on every side, so simulated images have no edge artefacts.
* Layer 0 is the bottom layer (z = 0 at its mid-plane); layer k sits at ``k · interlayer_A``.
* Slip: layer k+1 is layer k translated by ``D_k = Da·â + Db·b̂`` (Da, Db in Å along the unit
  vectors of the material's a and b). Trilayers take two slips: (Da, Db) for interface 1–2 and
  (Dc, Dd) for interface 2–3.
* Antiparallel (``antiparallel=True``, bilayers): layer 1 is layer 0 turned by 180° about its
  metal atom, then translated by D (the 2H family of hexagonal TMDs, :mod:`stackview.core.stacking`).
* Twist: layer 1 is layer 0 rotated by ``theta_deg`` (counter-clockwise seen from +z) about
  ``center_A`` (default: the centre of the field of view), then translated by ``top_shift_A``.
* ``origin_A`` translates the whole stack (where the lattice sits in the field of view).

``stack_arrays`` is the fast path used by dataset generation (no ASE objects); ``build_stack``
and ``build_twisted`` return ``ase.Atoms`` with the layer index in ``tags`` and the labels in
``atoms.info["stackview"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stackview.errors import UsageError
from stackview.materials.catalog import get_material
from stackview.materials.cell import Material


@dataclass(frozen=True)
class StackArrays:
    """Atoms of a stack as plain arrays: positions (n, 3) Å, atomic numbers (n,), layer (n,)."""

    positions: np.ndarray
    numbers: np.ndarray
    layer: np.ndarray


def _rotation(theta_deg: float) -> np.ndarray:
    t = math.radians(theta_deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def layer_arrays(
    material: Material,
    region_A: tuple[float, float, float, float],
    shift_A=(0.0, 0.0),
    theta_deg: float = 0.0,
    center_A=(0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n, 3) and atomic numbers of one layer covering ``region_A``.

    The layer is ``Rot(theta) · (lattice + basis − center) + center + shift``; only atoms inside
    ``region_A = (x0, x1, y0, y1)`` are returned.
    """
    x0, x1, y0, y1 = region_A
    rot = _rotation(theta_deg)
    center = np.asarray(center_A, dtype=float)
    shift = np.asarray(shift_A, dtype=float)
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    # corners in the layer's own (unrotated, unshifted) frame, then in lattice coordinates
    local = (corners - center - shift) @ rot + center
    frac = local @ np.linalg.inv(material.cell_2d)
    lo = np.floor(frac.min(axis=0)).astype(int) - 1
    hi = np.ceil(frac.max(axis=0)).astype(int) + 1
    n, m = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    lattice = np.column_stack([n.ravel(), m.ravel()]) @ material.cell_2d
    basis = material.frac_ab @ material.cell_2d
    xy = (lattice[:, None, :] + basis[None, :, :]).reshape(-1, 2)
    xy = (xy - center) @ rot.T + center + shift
    z = np.tile(material.z_A, len(lattice))
    numbers = np.tile(material.numbers(), len(lattice))
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    return np.column_stack([xy[inside], z[inside]]), numbers[inside]


def _validate_fov(fov_A, margin_A: float) -> tuple[float, float]:
    try:
        fx, fy = (float(v) for v in fov_A)
    except (TypeError, ValueError) as exc:
        raise UsageError("the field of view must be two numbers (width, height) in Å") from exc
    if not (0 < fx <= 5000 and 0 < fy <= 5000):
        raise UsageError(
            f"the field of view {fx:g} × {fy:g} Å is out of range (0 to 500 nm per side)"
        )
    if not (0 <= margin_A <= 200):
        raise UsageError(f"the margin {margin_A:g} Å is out of range (0 to 200 Å)")
    return fx, fy


def _postprocess(
    positions: np.ndarray, numbers: np.ndarray, layer: np.ndarray, rng: np.random.Generator,
    jitter_z_A: float, jitter_xy_A: float, vacancy_ratio: float,
) -> StackArrays:
    if not (0.0 <= vacancy_ratio < 1.0):
        raise UsageError(f"the vacancy ratio {vacancy_ratio:g} must be between 0 and 1")
    if jitter_z_A < 0 or jitter_xy_A < 0 or jitter_z_A > 3 or jitter_xy_A > 1:
        raise UsageError("jitter must be between 0 and 3 Å in z and 0 and 1 Å in x, y")
    if vacancy_ratio > 0:
        keep = rng.random(len(numbers)) >= vacancy_ratio
        positions, numbers, layer = positions[keep], numbers[keep], layer[keep]
    if jitter_xy_A > 0 or jitter_z_A > 0:
        positions = positions.copy()
        positions[:, :2] += rng.uniform(-jitter_xy_A, jitter_xy_A, size=(len(positions), 2))
        positions[:, 2] += rng.uniform(-jitter_z_A, jitter_z_A, size=len(positions))
    return StackArrays(positions, numbers, layer)


def stack_arrays(
    material: Material | str,
    slips_A=((0.0, 0.0),),
    fov_A=(20.0, 20.0),
    margin_A: float = 10.0,
    interlayer_A: float | None = None,
    origin_A=(0.0, 0.0),
    jitter_z_A: float = 0.0,
    jitter_xy_A: float = 0.0,
    vacancy_ratio: float = 0.0,
    seed=None,
    antiparallel: bool = False,
) -> StackArrays:
    """Slip-stacked multilayer as arrays; ``len(slips_A) + 1`` layers (see module docstring)."""
    material = get_material(material)
    slips = np.asarray(slips_A, dtype=float).reshape(-1, 2)
    if antiparallel and len(slips) != 1:
        raise UsageError("antiparallel stacks are bilayers (one slip)")
    if not np.all(np.isfinite(slips)):
        raise UsageError("slip values must be finite numbers")
    if np.any(np.abs(slips) > 100):
        raise UsageError("slip components must be within ±100 Å")
    fx, fy = _validate_fov(fov_A, margin_A)
    d = material.interlayer_A if interlayer_A is None else float(interlayer_A)
    if not (2.0 <= d <= 20.0):
        raise UsageError(f"the interlayer distance {d:g} Å is out of range (2 to 20 Å)")
    region = (-margin_A, fx + margin_A, -margin_A, fy + margin_A)
    shifts = np.vstack([[0.0, 0.0], np.cumsum(material.slip_to_cartesian(slips), axis=0)])
    shifts = shifts + np.asarray(origin_A, dtype=float)
    pos, num, lay = [], [], []
    for k, shift in enumerate(shifts):
        turned = antiparallel and k == 1
        p, n = layer_arrays(material, region, shift_A=shift, theta_deg=180.0 if turned else 0.0)
        p[:, 2] += k * d
        pos.append(p)
        num.append(n)
        lay.append(np.full(len(n), k, dtype=np.int16))
    rng = np.random.default_rng(seed)
    return _postprocess(np.vstack(pos), np.concatenate(num), np.concatenate(lay), rng,
                        jitter_z_A, jitter_xy_A, vacancy_ratio)


def twisted_arrays(
    material: Material | str,
    theta_deg: float,
    fov_A=(40.0, 40.0),
    margin_A: float = 10.0,
    interlayer_A: float | None = None,
    center_A=None,
    top_shift_A=(0.0, 0.0),
    origin_A=(0.0, 0.0),
    jitter_z_A: float = 0.0,
    jitter_xy_A: float = 0.0,
    vacancy_ratio: float = 0.0,
    seed=None,
) -> StackArrays:
    """Twisted bilayer as arrays (see module docstring); no commensurability is needed."""
    material = get_material(material)
    if not np.isfinite(theta_deg) or not (-360.0 <= theta_deg <= 360.0):
        raise UsageError(f"the twist angle {theta_deg} must be between -360 and 360 degrees")
    fx, fy = _validate_fov(fov_A, margin_A)
    d = material.interlayer_A if interlayer_A is None else float(interlayer_A)
    if not (2.0 <= d <= 20.0):
        raise UsageError(f"the interlayer distance {d:g} Å is out of range (2 to 20 Å)")
    region = (-margin_A, fx + margin_A, -margin_A, fy + margin_A)
    center = np.array([fx / 2, fy / 2]) if center_A is None else np.asarray(center_A, float)
    origin = np.asarray(origin_A, dtype=float)
    p0, n0 = layer_arrays(material, region, shift_A=origin)
    p1, n1 = layer_arrays(
        material, region, shift_A=origin + np.asarray(top_shift_A, float), theta_deg=theta_deg,
        center_A=center + origin,
    )
    p1[:, 2] += d
    layer = np.concatenate([np.zeros(len(n0), np.int16), np.ones(len(n1), np.int16)])
    rng = np.random.default_rng(seed)
    return _postprocess(np.vstack([p0, p1]), np.concatenate([n0, n1]), layer, rng,
                        jitter_z_A, jitter_xy_A, vacancy_ratio)


def to_atoms(arrays: StackArrays, fov_A, margin_A: float, info: dict):
    """Wrap :class:`StackArrays` in ``ase.Atoms`` (cell = field of view + margins, no pbc)."""
    from ase import Atoms

    fx, fy = (float(v) for v in fov_A)
    zmax = float(arrays.positions[:, 2].max()) if len(arrays.positions) else 0.0
    atoms = Atoms(
        numbers=arrays.numbers, positions=arrays.positions,
        cell=[fx + 2 * margin_A, fy + 2 * margin_A, zmax + 10.0],
        tags=arrays.layer.astype(int), pbc=False,
    )
    atoms.info["stackview"] = {**info, "fov_A": [fx, fy], "margin_A": float(margin_A)}
    return atoms


def build_stack(
    material: Material | str,
    slips_A=((0.0, 0.0),),
    fov_A=(20.0, 20.0),
    margin_A: float = 10.0,
    interlayer_A: float | None = None,
    origin_A=(0.0, 0.0),
    jitter_z_A: float = 0.0,
    jitter_xy_A: float = 0.0,
    vacancy_ratio: float = 0.0,
    seed=None,
    antiparallel: bool = False,
):
    """Slip-stacked bilayer (one slip) or trilayer (two slips) as ``ase.Atoms``.

    Parameters
    ----------
    material
        Material or its name.
    slips_A
        One ``(Da, Db)`` per interface, Å along â and b̂.
    fov_A
        Field of view (width, height), Å; atoms cover it plus ``margin_A`` on every side.
    interlayer_A
        Mid-plane distance between adjacent layers (Å); default from the material.
    origin_A
        Translation of the whole stack (Å).
    jitter_z_A, jitter_xy_A
        Uniform random displacement amplitudes (±, Å) applied to every atom.
    vacancy_ratio
        Fraction of atoms removed at random.
    seed
        Seed for jitter and vacancies.
    antiparallel
        Bilayers: the top layer turned by 180° about its metal atom (the 2H family).

    Returns
    -------
    ase.Atoms
        Layer index in ``tags``; labels and geometry in ``atoms.info["stackview"]``.
    """
    material = get_material(material)
    arrays = stack_arrays(material, slips_A, fov_A, margin_A, interlayer_A, origin_A,
                          jitter_z_A, jitter_xy_A, vacancy_ratio, seed, antiparallel)
    slips = np.asarray(slips_A, dtype=float).reshape(-1, 2)
    info = {
        "material": material.name, "task": "slip", "layers": len(slips) + 1,
        "slips_A": slips.tolist(),
        "interlayer_A": material.interlayer_A if interlayer_A is None else float(interlayer_A),
        "origin_A": [float(v) for v in origin_A], "jitter_z_A": jitter_z_A,
        "jitter_xy_A": jitter_xy_A, "vacancy_ratio": vacancy_ratio, "seed": seed,
        "family": "antiparallel" if antiparallel else "parallel",
    }
    return to_atoms(arrays, fov_A, margin_A, info)


def build_twisted(
    material: Material | str,
    theta_deg: float,
    fov_A=(40.0, 40.0),
    margin_A: float = 10.0,
    interlayer_A: float | None = None,
    center_A=None,
    top_shift_A=(0.0, 0.0),
    origin_A=(0.0, 0.0),
    jitter_z_A: float = 0.0,
    jitter_xy_A: float = 0.0,
    vacancy_ratio: float = 0.0,
    seed=None,
):
    """Twisted bilayer as ``ase.Atoms``: the top layer rotated by ``theta_deg`` (see module
    docstring); ``top_shift_A`` moves the moiré across the field of view."""
    material = get_material(material)
    arrays = twisted_arrays(material, theta_deg, fov_A, margin_A, interlayer_A, center_A,
                            top_shift_A, origin_A, jitter_z_A, jitter_xy_A, vacancy_ratio, seed)
    info = {
        "material": material.name, "task": "twist", "layers": 2, "theta_deg": float(theta_deg),
        "interlayer_A": material.interlayer_A if interlayer_A is None else float(interlayer_A),
        "center_A": None if center_A is None else [float(v) for v in center_A],
        "top_shift_A": [float(v) for v in top_shift_A],
        "origin_A": [float(v) for v in origin_A], "jitter_z_A": jitter_z_A,
        "jitter_xy_A": jitter_xy_A, "vacancy_ratio": vacancy_ratio, "seed": seed,
    }
    return to_atoms(arrays, fov_A, margin_A, info)


def triangle_domains(side_A: float, origin_A=(0.0, 0.0)):
    """``f(xy) -> domain`` of a tiling by equilateral triangles of side ``side_A``: 0 in the
    triangles pointing up, 1 in those pointing down (the paper's Fig. 5f alternates two twist
    angles this way)."""
    if not side_A > 0:
        raise UsageError(f"the triangle side {side_A:g} Å must be positive")
    origin = np.asarray(origin_A, dtype=float)
    h = side_A * math.sqrt(3.0) / 2.0

    def domain(xy: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(xy, dtype=float)) - origin
        b = p[:, 1] / h  # rows of triangles
        a = p[:, 0] / side_A - 0.5 * b
        return ((a - np.floor(a)) + (b - np.floor(b)) > 1.0).astype(np.int8)

    return domain


def _domain_bilayer(material: Material, region, tops: list[dict], domain_of_xy, d: float,
                    seed, vacancy_ratio: float) -> StackArrays:
    """One bottom layer and a top layer made, where ``domain_of_xy(xy) == k``, as
    ``layer_arrays(**tops[k])`` (each top atom belongs to the domain it sits in)."""
    p0, n0 = layer_arrays(material, region)
    tops_p, tops_n = [], []
    for k, placement in enumerate(tops):
        p, n = layer_arrays(material, region, **placement)
        keep = np.asarray(domain_of_xy(p[:, :2])) == k
        tops_p.append(p[keep])
        tops_n.append(n[keep])
    p1, n1 = np.vstack(tops_p), np.concatenate(tops_n)
    p1[:, 2] += d
    layer = np.concatenate([np.zeros(len(n0), np.int16), np.ones(len(n1), np.int16)])
    return _postprocess(np.vstack([p0, p1]), np.concatenate([n0, n1]), layer,
                        np.random.default_rng(seed), 0.0, 0.0, vacancy_ratio)


def build_twist_domains(
    material: Material | str,
    thetas_deg,
    domain_of_xy,
    fov_A=(100.0, 100.0),
    margin_A: float = 10.0,
    interlayer_A: float | None = None,
    center_A=None,
    vacancy_ratio: float = 0.0,
    seed=None,
):
    """Twisted bilayer whose top layer is turned by ``thetas_deg[k]`` where
    ``domain_of_xy(xy) == k`` (e.g. :func:`triangle_domains`): domains of different twist over
    one bottom layer, all rotations about ``center_A`` (default: the field's centre)."""
    material = get_material(material)
    thetas = [float(t) for t in np.atleast_1d(thetas_deg)]
    if not all(np.isfinite(thetas)) or any(abs(t) > 360 for t in thetas):
        raise UsageError("the twist angles must be between -360 and 360 degrees")
    fx, fy = _validate_fov(fov_A, margin_A)
    d = material.interlayer_A if interlayer_A is None else float(interlayer_A)
    region = (-margin_A, fx + margin_A, -margin_A, fy + margin_A)
    center = np.array([fx / 2, fy / 2]) if center_A is None else np.asarray(center_A, float)
    tops = [dict(theta_deg=theta, center_A=center) for theta in thetas]
    arrays = _domain_bilayer(material, region, tops, domain_of_xy, d, seed, vacancy_ratio)
    info = {"material": material.name, "task": "twist", "layers": 2, "thetas_deg": thetas,
            "interlayer_A": d, "center_A": [float(v) for v in center],
            "vacancy_ratio": vacancy_ratio, "seed": seed}
    return to_atoms(arrays, fov_A, margin_A, info)


def build_slip_domains(
    material: Material | str,
    domains,
    domain_of_xy,
    fov_A=(100.0, 50.0),
    margin_A: float = 10.0,
    interlayer_A: float | None = None,
    seed=None,
):
    """Bilayer whose top layer has the stacking ``domains[k] = (slip_A, antiparallel)`` where
    ``domain_of_xy(xy) == k``, over one bottom layer: e.g. a 3R domain beside a 2H one. The
    boundary is sharp (each top atom belongs to the domain it sits in)."""
    material = get_material(material)
    fx, fy = _validate_fov(fov_A, margin_A)
    d = material.interlayer_A if interlayer_A is None else float(interlayer_A)
    region = (-margin_A, fx + margin_A, -margin_A, fy + margin_A)
    tops = [dict(shift_A=material.slip_to_cartesian(
        np.asarray(slip, dtype=float).reshape(1, 2))[0], theta_deg=180.0 if anti else 0.0)
        for slip, anti in domains]
    arrays = _domain_bilayer(material, region, tops, domain_of_xy, d, seed, 0.0)
    info = {"material": material.name, "task": "slip", "layers": 2, "interlayer_A": d,
            "domains": [{"slip_A": [float(v) for v in s], "family":
                         "antiparallel" if a else "parallel"} for s, a in domains],
            "seed": seed}
    return to_atoms(arrays, fov_A, margin_A, info)


def moire_period_A(material: Material | str, theta_deg: float) -> float:
    """Moiré period L = a / (2 sin(θ/2)) of a twisted bilayer (Å), using |a|."""
    material = get_material(material)
    s = abs(math.sin(math.radians(theta_deg) / 2))
    if s < 1e-9:
        return math.inf
    return material.a_A / (2 * s)

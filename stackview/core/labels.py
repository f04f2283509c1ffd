"""Symmetry-aware stacking labels: canonical domains and distances (numpy only; no Qt, no torch).

Slip labels are ``(Da, Db)`` per interface, in Å along the unit vectors â, b̂ of the material's
in-plane cell (``D = Da·â + Db·b̂``). Two slips describe the same stack when they differ by a
lattice vector, ``D ≡ D + m·a + n·b``, and — because the two layers are identical and have the
same orientation, and an ADF image is (nearly) a projection — when they are opposite,
``D ≡ −D`` (swapping the layers turns slip D into −D up to a translation of the image). A
trilayer with slips (D1, D2) has its layers at offsets {0, D1, D1 + D2}; the projection is their
sum, which does not say which layer lies in the middle, so every order of the three layers gives
the same image: (D1, D2) ≡ (−D2, −D1) (the reversed stack) ≡ (D1 + D2, −D2) ≡ (D2, −D1 − D2) ≡
(−D1, D1 + D2) ≡ (−D1 − D2, D1) — six labels of one image (checked on simulations: NCC 1.0).

Canonical fundamental domain of a bilayer: ``Da ∈ [0, |a|)``, ``Db ∈ [0, |b|/2]`` (with
``Da ∈ [0, |a|/2]`` on the lines ``Db = 0`` and ``Db = |b|/2``). Distances are Cartesian lengths
(Å) of the difference vector minimised over all equivalents.

Twist labels are θ in degrees. Rotating the top layer by a symmetry rotation of the projected
monolayer (order n) leaves the stack unchanged, ``θ ≡ θ + 360°/n``; when the projected monolayer
also has a mirror line, ``θ ≡ −θ`` (mirror images, same twist magnitude). For MoS2 (n = 3, with
mirrors) the canonical domain is [0°, 60°]; θ and 60° − θ are different stacks.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from stackview.errors import UsageError
from stackview.materials.catalog import get_material
from stackview.materials.cell import Material

_NEIGHBOURS = np.array(list(itertools.product((-1, 0, 1), repeat=2)), dtype=float)


def layer_orders(pairs):
    """The labels of the same projected stack for every order of its layers: a list of arrays
    shaped like ``pairs`` (..., n_interfaces, 2); numpy or torch. Bilayer: D, −D. Trilayer: the
    six orders of the layer offsets {0, D1, D1 + D2}."""
    if pairs.shape[-2] == 1:
        return [pairs, -pairs]
    d1, d2 = pairs[..., 0:1, :], pairs[..., 1:2, :]
    s = d1 + d2
    if isinstance(pairs, np.ndarray):
        stack = np.concatenate
    else:  # a torch tensor, from the training loss
        import torch

        stack = torch.cat

    def cat(x, y):
        return stack([x, y], -2)

    return [pairs, cat(-d2, -d1), cat(s, -d2), cat(d2, -s), cat(-d1, s), cat(-s, d1)]


@dataclass(frozen=True, eq=False)
class SlipLabels:
    """Label space of slip-stacked multilayers of one material.

    Parameters
    ----------
    material
        The material (or its name).
    layers
        2 (bilayer, labels Da, Db) or 3 (trilayer, labels Da, Db, Dc, Dd).
    layer_swap
        Whether D ≡ −D (identical, same-orientation layers; true for all built-ins).
    family
        ``"parallel"`` (same-orientation layers), ``"antiparallel"`` (one layer turned by 180°;
        bilayers of materials with two families only, :mod:`stackview.core.stacking`) or
        ``"both"``: labels (Da, Db, family) with family 0 (parallel) or 1 (antiparallel); a
        value in between (a model's probability) counts as antiparallel from 0.5.

    Bilayers of materials whose projected monolayer has more symmetry than inversion (MoS2:
    3m) are folded by the whole group — D ≡ g·D for the projected operations g, and D ≡ −g·D in
    the parallel family — into the family's chamber (:func:`stackview.core.stacking.chamber_frac`);
    others (ReS2, ReSe2: only D ≡ −D) keep the domain above.
    """

    material: Material
    layers: int = 2
    layer_swap: bool = True
    family: str = "parallel"

    def __post_init__(self) -> None:
        object.__setattr__(self, "material", get_material(self.material))
        if self.layers not in (2, 3):
            raise UsageError(f"slip labels need 2 or 3 layers, not {self.layers}")
        if self.family not in ("parallel", "antiparallel", "both"):
            raise UsageError("the stacking family must be 'parallel', 'antiparallel' or 'both', "
                             f"not {self.family!r}")
        if self.family != "parallel":
            from stackview.core.stacking import check_family

            if self.layers != 2:
                raise UsageError("stacking families are for bilayers")
            check_family(self.material, "antiparallel")

    @property
    def n_outputs(self) -> int:
        return 2 * (self.layers - 1) + (1 if self.family == "both" else 0)

    @property
    def names(self) -> tuple[str, ...]:
        slips = ("Da", "Db", "Dc", "Dd")[: 2 * (self.layers - 1)]
        return slips + (("family",) if self.family == "both" else ())

    @property
    def families(self) -> tuple[str, ...]:
        return ("parallel", "antiparallel") if self.family == "both" else (self.family,)

    def family_space(self, family: str) -> SlipLabels:
        """The single-family label space (parallel or antiparallel) of this material."""
        return SlipLabels(self.material, self.layers, self.layer_swap, family)

    @property
    def uses_group(self) -> bool:
        """Whether the labels fold by the projected point group (not only D ≡ −D)."""
        return self.layers == 2 and (self.family != "parallel" or len(self._base()) > 1)

    def _base(self) -> list[np.ndarray]:
        cache = self.__dict__.setdefault("_ops_cache", {})
        if "base" not in cache:
            cache["base"] = _base_ops(self.material)
        return cache["base"]

    def label_ops(self, family: str | None = None) -> list[np.ndarray]:
        """The label-space matrices Q (row vectors: L' = L @ Q) of the slip symmetry of one
        family (bilayers): the projected operations g, with −g in the parallel family. Cached:
        every fold and distance asks for them, and they cost a symmetry search."""
        family = family or self.family
        cache = self.__dict__.setdefault("_ops_cache", {})
        if family not in cache:
            cache[family] = self._compute_label_ops(family)
        return cache[family]

    def _compute_label_ops(self, family: str) -> list[np.ndarray]:
        base = self._base()
        ops = base + ([-g for g in base] if family == "parallel" and self.layer_swap else [])
        u = self.material.unit_vectors
        lengths = self.lengths_A
        # in fractional coordinates the operations are integer matrices: rounded to them, so
        # that equivalent labels are exactly equivalent (the cells are stored to ~1e-6 Å)
        mats = [np.diag(1 / lengths) @ np.round(np.diag(lengths) @ (u @ g.T @ np.linalg.inv(u))
                                                 @ np.diag(1 / lengths)) @ np.diag(lengths)
                for g in ops]
        unique: list[np.ndarray] = []
        for q in mats:
            if not any(np.allclose(q, other, atol=1e-6) for other in unique):
                unique.append(q)
        return unique

    @property
    def lengths_A(self) -> np.ndarray:
        return np.array([self.material.a_A, self.material.b_A])

    def _as_pairs(self, labels) -> np.ndarray:
        arr = np.asarray(labels, dtype=float)
        if arr.shape[-1] != self.n_outputs:
            raise UsageError(
                f"expected {self.n_outputs} slip values per sample, got {arr.shape[-1]}"
            )
        if self.family == "both":
            arr = arr[..., :2]
        return arr.reshape(*arr.shape[:-1], self.layers - 1, 2)

    def family_of(self, labels) -> np.ndarray:
        """The family of each label (..., ): 0 parallel, 1 antiparallel."""
        if self.family != "both":
            shape = np.asarray(labels, dtype=float).shape[:-1]
            return np.full(shape, 1 if self.family == "antiparallel" else 0)
        return (np.asarray(labels, dtype=float)[..., 2] >= 0.5).astype(int)

    # --- the group path (bilayers folded by the projected point group) --------------------
    def _reference_A(self, family: str) -> np.ndarray:
        """A point inside the family's chamber (label coordinates, Å): the canonical
        representative of a label is its equivalent nearest to it (a Dirichlet domain, which
        for these reflection groups is the chamber itself)."""
        from stackview.core.stacking import chamber_frac

        tri = chamber_frac(self.material, family)
        frac = tri.mean(0) if tri is not None else np.array([0.1234, 0.2718])
        return frac * self.lengths_A

    def _shortest(self, deltas) -> tuple[np.ndarray, np.ndarray]:
        """The shortest lattice-equivalent Cartesian vector (..., 2) over several label
        differences (each (..., 2)), and its length (...)."""
        best_err = best_norm = None
        for delta in deltas:
            err = self._min_image(delta[..., None, :])[..., 0, :]
            norm = np.linalg.norm(err, axis=-1)
            if best_norm is None:
                best_err, best_norm = err, norm
            else:
                better = norm < best_norm - 1e-12
                best_err = np.where(better[..., None], err, best_err)
                best_norm = np.where(better, norm, best_norm)
        return best_err, best_norm

    def _canonical_group(self, labels) -> np.ndarray:
        arr = np.asarray(labels, dtype=float)
        pairs = self._as_pairs(arr)[..., 0, :]
        fam = self.family_of(arr)
        out = np.empty_like(pairs)
        inv_u = np.linalg.inv(self.material.unit_vectors)
        for code, name in ((0, "parallel"), (1, "antiparallel")):
            if name not in self.families:
                continue
            ref = self._reference_A(name)
            # the equivalent nearest the reference, as its offset from the reference
            err, _ = self._shortest(pairs @ q - ref for q in self.label_ops(name))
            rep = (ref @ self.material.unit_vectors + err) @ inv_u
            out = np.where((fam == code)[..., None], rep, out)
        if self.family == "both":
            return np.concatenate([out, arr[..., 2:3]], -1)
        return out

    # --- canonical form ----------------------------------------------------------------
    def canonical(self, labels) -> np.ndarray:
        """Representative of each label in the canonical fundamental domain (same shape)."""
        if self.uses_group:
            return self._canonical_group(labels)
        pairs = self._as_pairs(labels)
        frac = (pairs / self.lengths_A) % 1.0
        frac[np.isclose(frac, 1.0, atol=1e-12)] = 0.0
        if self.layer_swap:
            for other in layer_orders(frac)[1:]:
                other = other % 1.0
                other[np.isclose(other, 1.0, atol=1e-12)] = 0.0
                use = self._prefer(other, frac)
                frac = np.where(use[..., None, None], other, frac)
        out = frac * self.lengths_A
        return out.reshape(*out.shape[:-2], self.n_outputs)

    @staticmethod
    def _prefer(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True where x comes before y in the canonical order (per sample)."""
        # order key: (fb of interface 1 folded to a half, then the remaining coordinates)
        def key(f):
            fb = f[..., 0, 1]
            fa = f[..., 0, 0]
            upper = fb > 0.5 + 1e-9
            on_edge = np.isclose(fb, 0.0, atol=1e-9) | np.isclose(fb, 0.5, atol=1e-9)
            return [upper.astype(float), (on_edge & (fa > 0.5 + 1e-9)).astype(float),
                    *[f[..., i, j] for i in range(f.shape[-2]) for j in (1, 0)]]

        kx, ky = key(x), key(y)
        result = np.zeros(x.shape[:-2], dtype=bool)
        decided = np.zeros(x.shape[:-2], dtype=bool)
        for a, b in zip(kx, ky, strict=True):
            less = (a < b - 1e-9) & ~decided
            more = (a > b + 1e-9) & ~decided
            result |= less
            decided |= less | more
        return result

    # --- equivalents and distances ----------------------------------------------------------
    def equivalents(self, labels, reach: int = 1) -> np.ndarray:
        """All equivalent labels within ``reach`` lattice vectors: shape (..., M, n_outputs)."""
        pairs = self._as_pairs(labels)
        if self.uses_group:
            if self.family == "both":
                raise UsageError("equivalents of labels with a family column: use the "
                                 "label space of one family")
            variants = [pairs @ q for q in self.label_ops()]
        else:
            variants = layer_orders(pairs) if self.layer_swap else [pairs]
        steps = np.arange(-reach, reach + 1)
        shifts = np.array(list(itertools.product(steps, repeat=2)), dtype=float) * self.lengths_A
        n_int = self.layers - 1
        combos = np.array(list(itertools.product(range(len(shifts)), repeat=n_int)))
        total_shift = shifts[combos]  # (C, n_int, 2)
        out = []
        for v in variants:
            out.append(v[..., None, :, :] + total_shift)
        eq = np.concatenate(out, axis=-3)
        return eq.reshape(*eq.shape[:-2], self.n_outputs)

    def _min_image(self, delta_pairs: np.ndarray) -> np.ndarray:
        """Shortest lattice-equivalent Cartesian vectors (..., n_int, 2) of slip differences."""
        frac = delta_pairs / self.lengths_A
        frac = frac - np.round(frac)
        cand = frac[..., None, :] + _NEIGHBOURS  # (..., 9, 2)
        cart = (cand * self.lengths_A) @ self.material.unit_vectors
        norms = np.linalg.norm(cart, axis=-1)
        best = np.argmin(norms, axis=-1)
        return np.take_along_axis(cart, best[..., None, None], axis=-2)[..., 0, :]

    def residual(self, predicted, true) -> tuple[np.ndarray, np.ndarray]:
        """Minimal error vectors and the matching true labels.

        Returns
        -------
        (error_cart, best_true)
            ``error_cart``: (..., n_int, 2) Cartesian error vectors (Å) per interface for the
            equivalent of ``true`` closest to ``predicted``; ``best_true``: that equivalent
            expressed as labels (..., n_outputs).
        """
        if self.uses_group:
            return self._residual_group(predicted, true)
        p = self._as_pairs(predicted)
        t = self._as_pairs(true)
        p, t = np.broadcast_arrays(p, t)
        options = layer_orders(t) if self.layer_swap else [t]
        best_err = None
        best_true = None
        best_norm = None
        for opt in options:
            diff_lab = p - opt
            err = self._min_image(diff_lab)
            norm = np.sqrt((err**2).sum(axis=(-1, -2)))
            # true label equivalent: predicted minus the minimal error in label coordinates
            err_lab = err @ np.linalg.inv(self.material.unit_vectors)
            eq_true = p - err_lab
            if best_norm is None:
                best_err, best_true, best_norm = err, eq_true, norm
            else:
                better = norm < best_norm
                best_err = np.where(better[..., None, None], err, best_err)
                best_true = np.where(better[..., None, None], eq_true, best_true)
                best_norm = np.minimum(norm, best_norm)
        return best_err, best_true.reshape(*best_true.shape[:-2], self.n_outputs)

    def _residual_group(self, predicted, true):
        pred = np.asarray(predicted, dtype=float)
        tru = np.asarray(true, dtype=float)
        pred, tru = np.broadcast_arrays(pred, tru)
        p = self._as_pairs(pred)[..., 0, :]
        t = self._as_pairs(tru)[..., 0, :]
        fam = self.family_of(tru)
        u = self.material.unit_vectors
        err = np.zeros_like(p)
        for code, name in ((0, "parallel"), (1, "antiparallel")):
            if name not in self.families:
                continue
            # the equivalent of the true label nearest to the prediction: the nearest
            # equivalent of the prediction to the true label, mirrored back (the group acts by
            # isometries)
            e, _ = self._shortest(p - t @ q for q in self.label_ops(name))
            err = np.where((fam == code)[..., None], e, err)
        best = p - err @ np.linalg.inv(u)
        if self.family == "both":
            best = np.concatenate([best, tru[..., 2:3]], -1)
        return err[..., None, :], best

    def distance(self, predicted, true) -> np.ndarray:
        """Symmetry-aware ΔD (Å): length of the slip error, minimised over equivalents.

        For trilayers it is the root-sum-square of both interfaces' errors. Labels of different
        families (``family="both"``) are infinitely far apart.
        """
        err, _ = self.residual(predicted, true)
        d = np.sqrt((err**2).sum(axis=(-1, -2)))
        if self.family == "both":
            d = np.where(self.family_of(predicted) == self.family_of(true), d, np.inf)
        return d

    def domain_bounds_A(self) -> list[tuple[float, float]]:
        """Sampling box of the canonical domain per output (Å), for dataset generation."""
        a, b = self.lengths_A
        if self.uses_group:  # sampled over the whole cell: uniform over the chamber once folded
            return [(0.0, a), (0.0, b)] + ([(0.0, 1.0)] if self.family == "both" else [])
        bounds = [(0.0, a), (0.0, b / 2 if self.layer_swap else b)]
        if self.layers == 3:
            bounds += [(0.0, a), (0.0, b)]
        return bounds


def _base_ops(material: Material) -> list[np.ndarray]:
    """The projected point operations that fold a slip besides D ≡ −D: all of them when the
    group is larger than {1, −1} (MoS2: 3m), none (the identity) for ReS2-like layers, whose only
    operation besides the identity is the inversion that the layer swap already gives."""
    ops = projected_symmetry_ops(material)
    eye = np.eye(2)
    if all(np.allclose(g, eye, atol=1e-6) or np.allclose(g, -eye, atol=1e-6) for g in ops):
        return [eye]
    return ops


def _maps_onto_itself(material: Material, op: np.ndarray, tol_A: float) -> bool:
    """Whether the 2×2 Cartesian operation maps the projected monolayer onto itself: the
    lattice onto itself and the basis (species and in-plane position) up to a translation."""
    cell = material.cell_2d
    # lattice preserved: op(a), op(b) are integer combinations of a, b
    m = (cell @ op.T) @ np.linalg.inv(cell)
    if not np.allclose(m, np.round(m), atol=1e-3):
        return False
    xy = material.frac_ab @ cell
    sym = np.array(material.symbols)
    new = xy @ op.T
    for j in np.nonzero(sym == sym[0])[0]:
        moved = new + (xy[j] - new[0])
        if all(_has_site(moved[i], xy[sym == sym[i]], cell, tol_A) for i in range(len(sym))):
            return True
    return False


def _mirror_op(material: Material, tol_A: float) -> np.ndarray | None:
    """A mirror line of the projected monolayer (along or across a short lattice vector), or
    None."""
    a, b = material.cell_2d
    for v in (a, b, a + b, a - b):
        for phi in (math.atan2(v[1], v[0]), math.atan2(v[1], v[0]) + math.pi / 2):
            ref = np.array(
                [[math.cos(2 * phi), math.sin(2 * phi)], [math.sin(2 * phi), -math.cos(2 * phi)]]
            )
            if _maps_onto_itself(material, ref, tol_A):
                return ref
    return None


def _rotation_order(material: Material, tol_A: float) -> int:
    for n in (6, 4, 3, 2):
        ang = 2 * math.pi / n
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        if _maps_onto_itself(material, rot, tol_A):
            return n
    return 1


def projected_symmetry(material: Material | str, tol_A: float = 0.05) -> tuple[int, bool]:
    """Rotation order n and presence of a mirror line of the monolayer's 2-D projection.

    An operation counts when it maps the lattice onto itself and the projected basis (species
    and in-plane position) onto itself up to a translation.
    """
    material = get_material(material)
    return _rotation_order(material, tol_A), _mirror_op(material, tol_A) is not None


def projected_symmetry_ops(material: Material | str, tol_A: float = 0.05) -> list[np.ndarray]:
    """The point operations (2×2, Cartesian) of the monolayer's projection: its rotations and,
    with a mirror line, their products with it."""
    material = get_material(material)
    n = _rotation_order(material, tol_A)
    ops = [np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
           for t in (2 * math.pi * k / n for k in range(n))]
    mirror = _mirror_op(material, tol_A)
    return ops + ([r @ mirror for r in ops] if mirror is not None else [])


def _has_site(p: np.ndarray, sites: np.ndarray, cell: np.ndarray, tol_A: float) -> bool:
    frac = (sites - p) @ np.linalg.inv(cell)
    frac -= np.round(frac)
    return bool(np.min(np.linalg.norm(frac @ cell, axis=1)) < tol_A)


@dataclass(frozen=True, eq=False)
class TwistLabels:
    """Label space of twisted bilayers: θ (degrees) modulo the projected symmetry."""

    material: Material
    rotation_order: int = 0
    mirror: bool | None = None

    def __post_init__(self) -> None:
        material = get_material(self.material)
        object.__setattr__(self, "material", material)
        if self.rotation_order == 0 or self.mirror is None:
            n, m = projected_symmetry(material)
            if self.rotation_order == 0:
                object.__setattr__(self, "rotation_order", n)
            if self.mirror is None:
                object.__setattr__(self, "mirror", m)

    n_outputs = 1
    names = ("theta",)

    @property
    def period_deg(self) -> float:
        return 360.0 / self.rotation_order

    @property
    def domain_deg(self) -> tuple[float, float]:
        return (0.0, self.period_deg / 2 if self.mirror else self.period_deg)

    def canonical(self, theta_deg) -> np.ndarray:
        """θ folded into the canonical domain (e.g. [0°, 60°] for MoS2)."""
        t = np.asarray(theta_deg, dtype=float) % self.period_deg
        if self.mirror:
            t = np.where(t > self.period_deg / 2, self.period_deg - t, t)
        return t

    def distance(self, predicted_deg, true_deg) -> np.ndarray:
        """Twist error (degrees) minimised over equivalent angles."""
        p = np.asarray(predicted_deg, dtype=float)
        t = np.asarray(true_deg, dtype=float)
        period = self.period_deg
        d = (p - t) % period
        best = np.minimum(d, period - d)
        if self.mirror:
            d2 = (p + t) % period
            best = np.minimum(best, np.minimum(d2, period - d2))
        return best

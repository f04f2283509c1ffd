"""Stacking families and named stacking classes of bilayers (numpy only; no Qt, no torch).

A hexagonal TMD monolayer (MoS2, MoSe2, WS2) projects onto the plane with 3m symmetry and no
2-fold axis, so a layer and the same layer turned by 180° (about its metal atom) are different:
bilayers come in two *families*,

* ``"parallel"`` (3R family): both layers in the same orientation, top = bottom + D;
* ``"antiparallel"`` (2H family): one layer turned by 180° about its metal atom, then shifted by
  D. The label is D = (metal of the turned layer) − (metal of the unturned layer), which does not
  depend on which of the two lies on top (a projection cannot tell).

Symmetry of the labels (P = the monolayer's projected point operations, 3m here; translations by
lattice vectors always): in the parallel family D ≡ g·D and D ≡ −g·D for g in P (a swap of the
layers turns D into −D); in the antiparallel family only D ≡ g·D for g in P — *not* D ≡ −D: a
swap of the layers exchanges which one is turned, and turning the whole stack by 180° maps the
turned layer's metal at D to −D and the unturned one's to 0, so the label stays D. AA′ (D = δ)
and A′B (D = −δ) are therefore different stackings (tests/test_core_stacking.py shows both on
simulated images: the images of D and g·D agree, those of δ and −δ do not).

Canonical domains (the chambers of the two reflection groups, vertices in fractional
coordinates of a, b): parallel, the triangle AA (0, 0) – AB (1/3, 2/3) – saddle (1/2, 1/2);
antiparallel, the equilateral triangle AB′ (0, 0) – AA′ (1/3, 2/3) – A′B (2/3, 1/3).

Class names follow He, Hummer & Franchini, Phys. Rev. B 89, 075409 (2014), with δ the chalcogen
site of the unturned layer (frac (1/3, 2/3) in the built-ins' convention):

=======  ============  ======  =====================================================
family   name          D       what sits over what
=======  ============  ======  =====================================================
par.     AA            0       metal over metal, chalcogen over chalcogen (eclipsed)
par.     AB/BA         ±δ      metal over chalcogen (3R); AB and BA are the same
                                projection (a swap of the layers), so one class
anti.    AA′           δ       metal over chalcogen and chalcogen over metal (2H)
anti.    AB′           0       metal over metal
anti.    A′B           −δ      chalcogen over chalcogen
=======  ============  ======  =====================================================

In data files (map.csv, summary.json) the prime is written as an ASCII apostrophe (``AA'``);
:attr:`StackingClass.label` has the typographic prime for figures and the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stackview.errors import UsageError
from stackview.materials.catalog import get_material
from stackview.materials.cell import Material

FAMILIES = ("parallel", "antiparallel")
#: a window whose slip lies farther than this from every class of its family is "intermediate"
CLASS_TOLERANCE_A = 0.5
INTERMEDIATE = "intermediate"

_DELTA = (1.0 / 3.0, 2.0 / 3.0)
_MINUS_DELTA = (2.0 / 3.0, 1.0 / 3.0)
_CHAMBERS = {
    "parallel": ((0.0, 0.0), _DELTA, (0.5, 0.5)),
    "antiparallel": ((0.0, 0.0), _DELTA, _MINUS_DELTA),
}


@dataclass(frozen=True)
class StackingClass:
    """A named high-symmetry stacking: its family and slip (fractional coordinates of a, b)."""

    name: str
    family: str
    frac: tuple[float, float]
    description: str

    @property
    def label(self) -> str:
        """The name with typographic primes (AA′), for figures and the window."""
        return self.name.replace("'", "\u2032")

    def slip_A(self, material: Material | str) -> np.ndarray:
        """The class's slip (Da, Db) in Å."""
        m = get_material(material)
        return np.asarray(self.frac) * np.array([m.a_A, m.b_A])


_CLASSES = (
    StackingClass("AA", "parallel", (0.0, 0.0), "metal over metal, chalcogen over chalcogen"),
    StackingClass("AB/BA", "parallel", _DELTA,
                  "metal over chalcogen (3R); AB and BA are one projection"),
    StackingClass("AA'", "antiparallel", _DELTA,
                  "metal over chalcogen, chalcogen over metal (2H)"),
    StackingClass("AB'", "antiparallel", (0.0, 0.0), "metal over metal"),
    StackingClass("A'B", "antiparallel", _MINUS_DELTA, "chalcogen over chalcogen"),
)


def _is_three_fold_site(material: Material) -> bool:
    """Whether the chalcogens sit at frac (1/3, 2/3) of a hexagonal cell (the class convention)."""
    sym = np.asarray(material.symbols)
    others = material.frac_ab[sym != sym[0]]
    return len(others) > 0 and bool(np.allclose(others % 1.0, _DELTA, atol=2e-3))


def has_families(material: Material | str) -> bool:
    """Whether the material's bilayers come in two families: its projected monolayer has no
    2-fold rotation (turning a layer by 180° makes a different layer)."""
    from stackview.core.labels import projected_symmetry

    n, _ = projected_symmetry(material)
    return n % 2 == 1


def check_family(material: Material | str, family: str) -> str:
    """The family name, validated for the material (one sentence when it does not apply)."""
    if family not in FAMILIES:
        raise UsageError(f"the stacking family must be 'parallel' or 'antiparallel', not "
                         f"{family!r}")
    if family == "antiparallel" and not has_families(material):
        name = get_material(material).name
        raise UsageError(f"{name} has no antiparallel family: its monolayer turned by 180° is "
                         "the same layer")
    return family


def chamber_frac(material: Material | str, family: str) -> np.ndarray | None:
    """Vertices (3, 2) of the family's canonical triangle in fractional coordinates, or None for
    materials without named classes."""
    material = get_material(material)
    if not (has_families(material) and _is_three_fold_site(material)):
        return None
    return np.array(_CHAMBERS[check_family(material, family)])


def stacking_classes(material: Material | str, family: str | None = None
                     ) -> tuple[StackingClass, ...]:
    """The named classes of a material (of one family, or both); empty when it has none (the
    names are for hexagonal layers with the chalcogen at frac (1/3, 2/3))."""
    material = get_material(material)
    if not (has_families(material) and _is_three_fold_site(material)):
        return ()
    return tuple(c for c in _CLASSES if family is None or c.family == family)


def classify(material: Material | str, slip_A, family, tolerance_A: float = CLASS_TOLERANCE_A):
    """Name the stacking of each slip.

    Parameters
    ----------
    material
        The material (or its name).
    slip_A
        Slips (N, 2) in Å (Da, Db).
    family
        One family name for all, or one per slip (N,) of names or of 0/1 (1 = antiparallel).
    tolerance_A
        Farther than this from every class of its family, a slip is ``"intermediate"``.

    Returns
    -------
    (names, distance_A)
        Class names (N,) (object array; ``""`` for materials without classes) and the distance
        (Å, symmetry-aware) to the nearest class of the slip's family.
    """
    from stackview.core.labels import SlipLabels

    material = get_material(material)
    slip = np.asarray(slip_A, dtype=float).reshape(-1, 2)
    fam = np.broadcast_to(np.asarray(family_names(family), dtype=object), (len(slip),))
    names = np.full(len(slip), "", dtype=object)
    dist = np.full(len(slip), np.nan)
    for f in FAMILIES:
        rows = (fam == f) & np.all(np.isfinite(slip), axis=1)
        classes = stacking_classes(material, f)
        if not rows.any() or not classes:
            continue
        space = SlipLabels(material, family=f)
        d = np.stack([space.distance(slip[rows], c.slip_A(material)) for c in classes], 1)
        best = d.argmin(1)
        near = d[np.arange(len(best)), best]
        names[rows] = np.where(near <= tolerance_A,
                               np.array([c.name for c in classes], dtype=object)[best],
                               INTERMEDIATE)
        dist[rows] = near
    return names, dist


def family_names(family):
    """Family names from names or 0/1 codes (1, or ≥ 0.5, = antiparallel)."""
    arr = np.asarray(family)
    if arr.dtype.kind in "fiub":
        return np.where(arr >= 0.5, "antiparallel", "parallel").astype(object)
    return arr.astype(object)


__all__ = ["CLASS_TOLERANCE_A", "FAMILIES", "INTERMEDIATE", "StackingClass", "chamber_frac",
           "check_family", "classify", "family_names", "has_families", "stacking_classes"]

"""Stacking families of hexagonal TMD bilayers (stackview.core.stacking, SlipLabels families):
the antiparallel family's symmetry shown on simulated images, the chambers, the class names."""

import numpy as np
import pytest

from stackview.analysis.compare import registered_ncc
from stackview.core.labels import SlipLabels
from stackview.core.stacking import (
    INTERMEDIATE,
    chamber_frac,
    classify,
    has_families,
    stacking_classes,
)
from stackview.errors import UsageError
from stackview.materials import build_stack, get_material
from stackview.simulation import PRESETS, simulate

FOV = (30.0, 30.0)
MOS2 = get_material("MoS2")
DELTA = np.array([1 / 3, 2 / 3]) * np.array([MOS2.a_A, MOS2.b_A])


def _atoms(slip, antiparallel):
    return build_stack(MOS2, [slip], fov_A=FOV, margin_A=12, antiparallel=antiparallel)


def _image(atoms):
    return simulate(atoms, PRESETS["MoS2-60kV"], sampling_A=0.15, fov_A=FOV).image


def _turned(atoms, g):
    """The same atoms seen in a frame turned by the 2×2 operation g about the field's centre."""
    out = atoms.copy()
    c = np.array(FOV) / 2
    out.positions[:, :2] = (out.positions[:, :2] - c) @ np.asarray(g).T + c
    return out


def _cart_op(space, q):
    u = space.material.unit_vectors
    return (np.linalg.inv(u) @ q @ u).T  # label matrix Q = U gᵀ U⁻¹ back to g


def test_families_apply_to_hexagonal_layers_only():
    assert has_families("MoS2") and not has_families("ReS2")
    with pytest.raises(UsageError, match="no antiparallel family"):
        SlipLabels("ReS2", family="antiparallel")
    assert len(SlipLabels("MoS2").label_ops()) == 12  # ±3m
    assert len(SlipLabels("MoS2", family="antiparallel").label_ops()) == 6  # 3m, no −1
    assert len(SlipLabels("ReS2").label_ops()) == 2


def test_antiparallel_slip_symmetry_on_images():
    """D and g·D (g in the monolayer's 3m) are one antiparallel stacking: the image of g·D is
    the image of D seen in the turned frame; D and −D are not (AA′ ≠ A′B), and no frame turn or
    mirror makes them alike."""
    space = SlipLabels(MOS2, family="antiparallel")
    d = np.array([0.9, 0.6])
    base = _atoms(d, True)
    for q in space.label_ops():
        g = _cart_op(space, q)
        moved = _image(_atoms(d @ q, True))
        assert registered_ncc(moved, _image(_turned(base, g))) > 0.99
        assert space.distance(d @ q, d) == pytest.approx(0.0, abs=1e-6)
    aa, a_b = _image(_atoms(DELTA, True)), _image(_atoms(-DELTA, True))
    for view in (a_b, a_b[::-1, ::-1], a_b[:, ::-1], a_b[::-1, :]):
        assert registered_ncc(aa, view) < 0.95
    assert space.distance(DELTA, -DELTA) > 1.5
    # the parallel family keeps D ≡ −D
    assert SlipLabels(MOS2).distance(DELTA, -DELTA) == pytest.approx(0.0, abs=1e-6)


def test_antiparallel_images_are_centrosymmetric_parallel_ones_are_not():
    d = np.array([0.9, 0.6])
    anti = _image(_atoms(d, True))
    par = _image(_atoms(d, False))
    assert registered_ncc(anti, anti[::-1, ::-1]) > 0.99
    assert registered_ncc(par, par[::-1, ::-1]) < 0.95
    # ... so no window of one family looks like one of the other
    for other in (par, par[::-1, ::-1]):
        assert registered_ncc(anti, other) < 0.95


@pytest.mark.parametrize("family", ["parallel", "antiparallel"])
def test_canonical_lands_in_the_chamber(family):
    space = SlipLabels(MOS2, family=family)
    rng = np.random.default_rng(0)
    labels = rng.uniform(-6, 6, (500, 2))
    canon = space.canonical(labels)
    frac = canon / space.lengths_A
    tri = chamber_frac(MOS2, family)
    # barycentric coordinates of the canonical points in the chamber (Cartesian)
    cell = MOS2.cell_2d
    p, t = frac @ cell, tri @ cell
    m = np.column_stack([t[1] - t[0], t[2] - t[0]])
    lam = np.linalg.solve(m, (p - t[0]).T).T
    assert np.all(lam > -1e-6) and np.all(lam.sum(1) < 1 + 1e-6)
    for q in space.label_ops():
        np.testing.assert_allclose(space.canonical(labels @ q + [MOS2.a_A, 0]), canon,
                                   atol=1e-5)
    np.testing.assert_allclose(space.canonical(canon), canon, atol=1e-9)


def test_both_families_label_space():
    space = SlipLabels(MOS2, family="both")
    assert space.names == ("Da", "Db", "family") and space.n_outputs == 3
    assert np.isinf(space.distance([1.0, 1.0, 0.0], [1.0, 1.0, 1.0]))
    assert space.distance([1.0, 1.0, 0.9], [1.1, 1.0, 1.0]) == pytest.approx(0.1, abs=1e-6)
    # a probability in the family column is kept; the fold follows its family
    out = space.canonical([[-DELTA[0], -DELTA[1], 0.8], [-DELTA[0], -DELTA[1], 0.1]])
    np.testing.assert_allclose(out[0, 2], 0.8)
    assert space.family_space("antiparallel").distance(out[0, :2], -DELTA) < 1e-6
    assert space.family_space("parallel").distance(out[1, :2], DELTA) < 1e-6
    with pytest.raises(UsageError):
        SlipLabels(MOS2, layers=3, family="both")


def _columns(atoms, layer, symbol):
    keep = (atoms.get_tags() == layer) & (np.array(atoms.get_chemical_symbols()) == symbol)
    return atoms.positions[keep, :2]


def _over(top, bottom):
    """Whether every top column in the field's middle sits on a bottom column."""
    mid = np.all(np.abs(top - np.array(FOV) / 2) < 6, axis=1)
    d = np.linalg.norm(top[mid, None, :] - bottom[None, :, :], axis=-1).min(1)
    return bool(np.all(d < 1e-3))


@pytest.mark.parametrize("name, family, metal_on, chalcogen_on", [
    ("AA", "parallel", "Mo", "S"),
    ("AB/BA", "parallel", "S", None),
    ("AA'", "antiparallel", "S", "Mo"),
    ("AB'", "antiparallel", "Mo", None),
    ("A'B", "antiparallel", None, "S"),
])
def test_class_names_say_what_sits_over_what(name, family, metal_on, chalcogen_on):
    cls = {c.name: c for c in stacking_classes(MOS2)}[name]
    assert cls.family == family
    atoms = _atoms(cls.slip_A(MOS2), family == "antiparallel")
    for species, under in (("Mo", metal_on), ("S", chalcogen_on)):
        top = _columns(atoms, 1, species)
        if under is None:  # over neither species: a hollow
            assert not _over(top, _columns(atoms, 0, "Mo"))
            assert not _over(top, _columns(atoms, 0, "S"))
        else:
            assert _over(top, _columns(atoms, 0, under))


def test_classify_names_and_distances():
    space = SlipLabels(MOS2, family="antiparallel")
    slips = np.array([DELTA, -DELTA, [0.0, 0.0], DELTA @ space.label_ops()[1],
                      DELTA + [0.2, 0.0], [0.9, 0.75]])
    names, dist = classify(MOS2, slips, "antiparallel")
    assert list(names[:5]) == ["AA'", "A'B", "AB'", "AA'", "AA'"]
    assert dist[4] == pytest.approx(0.2, abs=1e-6)
    assert names[5] == INTERMEDIATE and dist[5] > 0.5
    names, _ = classify(MOS2, [DELTA, -DELTA, [0.0, 0.0]], [0, 0, 1])
    assert list(names) == ["AB/BA", "AB/BA", "AB'"]
    assert stacking_classes("ReS2") == ()
    assert classify("ReS2", [[1.0, 1.0]], "parallel")[0][0] == ""
    assert [c.label for c in stacking_classes(MOS2, "antiparallel")] == ["AA′", "AB′", "A′B"]

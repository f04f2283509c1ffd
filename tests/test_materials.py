import math

import ase.build
import ase.io
import numpy as np
import pytest

from stackview.errors import UsageError
from stackview.materials import (
    build_stack,
    build_twisted,
    get_material,
    list_materials,
    material_from_file,
    moire_period_A,
    reduce_basis_2d,
    save_user_material,
)
from stackview.materials.derive import material_from_atoms


@pytest.mark.parametrize(
    "name, a, b, gamma, n",
    [("MoS2", 3.18, 3.18, 120.0, 3), ("ReS2", 6.419, 6.523, 118.84, 12),
     ("ReSe2", 6.670, 6.793, 118.81, 12)],
)
def test_builtin_cells_follow_convention(name, a, b, gamma, n):
    m = get_material(name)
    assert m.a_A == pytest.approx(a, abs=2e-3)
    assert m.b_A == pytest.approx(b, abs=2e-3)
    assert m.gamma_deg == pytest.approx(gamma, abs=0.05)
    assert m.n_atoms == n
    assert m.a_vec_A[1] == 0 and m.a_vec_A[0] > 0 and m.b_vec_A[1] > 0
    assert m.a_A <= m.b_A and m.gamma_deg >= 90


def test_lattice_constants_close_to_literature():
    for name in ("MoS2", "ReS2", "ReSe2"):
        m = get_material(name)
        assert m.a_A == pytest.approx(m.literature["a_A"], rel=0.012)
        if "b_A" in m.literature:
            assert m.b_A == pytest.approx(m.literature["b_A"], rel=0.013)


def test_builtins_rederive_from_paper_structures(shared_dir):
    for name in ("ReS2", "MoS2"):
        fname = f"{name}_one_layer_tedgen.xyz"
        atoms = ase.io.read(shared_dir / "data" / "structures" / fname)
        derived = material_from_atoms(atoms, name)
        builtin = get_material(name)
        np.testing.assert_allclose(derived.cell_2d, builtin.cell_2d, atol=1e-4)
        np.testing.assert_allclose(derived.frac_ab, builtin.frac_ab, atol=1e-4)


def test_bulk_cif_gives_same_res2_cell(shared_dir):
    m = material_from_file(shared_dir / "data" / "structures" / "ReS2_bulk_mp-572758.cif", "X")
    ref = get_material("ReS2")
    np.testing.assert_allclose(m.cell_2d, ref.cell_2d, atol=1e-3)
    assert m.n_atoms == 12
    assert 6.0 < m.interlayer_A < 7.0  # two layers per bulk cell


def test_import_periodic_monolayer_and_register(tmp_path):
    atoms = ase.build.mx2("WS2", a=3.153, thickness=3.14, vacuum=8.0)
    path = tmp_path / "WS2.cif"
    ase.io.write(path, atoms)
    m = material_from_file(path, name="WS2u")  # WS2 itself is built in
    assert m.a_A == pytest.approx(3.153, abs=1e-3)
    assert m.gamma_deg == pytest.approx(120.0, abs=1e-3)
    assert m.n_atoms == 3
    save_user_material(m)
    assert "WS2u" in list_materials()
    assert get_material("ws2u").a_A == pytest.approx(3.153, abs=1e-3)
    with pytest.raises(UsageError):
        save_user_material(m)  # exists already


def test_import_supercell_flake_rotated():
    # a rotated, finite supercell with a non-periodic box: the finite route must find the cell
    atoms = ase.build.mx2("MoS2", a=3.16, vacuum=5) * (12, 12, 1)
    atoms.pbc = False
    atoms.rotate(37, "z")
    m = material_from_atoms(atoms, "flake")
    assert m.a_A == pytest.approx(3.16, abs=1e-3) and m.n_atoms == 3


def test_reduce_basis():
    a, b = reduce_basis_2d(np.array([3.0, 0.0]), np.array([7.5, 2.6]))
    assert np.linalg.norm(a) <= np.linalg.norm(b)
    assert a @ b <= 0 and abs(a @ b) <= a @ a / 2 + 1e-9
    with pytest.raises(UsageError):
        reduce_basis_2d(np.array([1.0, 0.0]), np.array([2.0, 0.0]))


def test_unknown_material_is_usage_error():
    with pytest.raises(UsageError, match="unknown material"):
        get_material("Unobtainium")


def _match_layers(atoms):
    pos = atoms.positions
    tags = atoms.get_tags()
    return pos[tags == 0], pos[tags == 1]


@pytest.mark.parametrize("name", ["ReS2", "MoS2"])
def test_top_layer_moves_by_exactly_D(name):
    m = get_material(name)
    slip = (1.0, 1.5)
    ref = build_stack(m, [(0.0, 0.0)], fov_A=(30, 30), margin_A=6)
    moved = build_stack(m, [slip], fov_A=(30, 30), margin_A=6)
    d_cart = m.slip_to_cartesian(slip)
    bottom0, top0 = _match_layers(ref)
    bottom1, top1 = _match_layers(moved)
    np.testing.assert_allclose(np.sort(bottom0, axis=0), np.sort(bottom1, axis=0))
    # every top atom of the slipped stack = some top atom of the AA stack + D
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(top0[:, :2] + d_cart).query(top1[:, :2])
    interior = np.all((top1[:, :2] > 2) & (top1[:, :2] < 28), axis=1)
    assert dist[interior].max() < 1e-9
    assert np.linalg.norm(d_cart) == pytest.approx(
        math.sqrt(1 + 2.25 + 2 * 1.5 * math.cos(math.radians(m.gamma_deg))), rel=1e-12
    )
    # layer spacing
    np.testing.assert_allclose(
        np.unique(top1[:, 2].round(6)), np.unique(bottom1[:, 2].round(6)) + m.interlayer_A
    )


def test_atoms_cover_field_of_view_plus_margin():
    atoms = build_stack("ReS2", [(0.3, 0.2)], fov_A=(40, 25), margin_A=8)
    xy = atoms.positions[:, :2]
    assert xy[:, 0].min() < -7 and xy[:, 0].max() > 47
    assert xy[:, 1].min() < -7 and xy[:, 1].max() > 32
    assert atoms.info["stackview"]["slips_A"] == [[0.3, 0.2]]


def test_trilayer_slips_accumulate():
    m = get_material("ReS2")
    atoms = build_stack(m, [(1.0, 0.5), (0.2, 0.7)], fov_A=(20, 20), margin_A=5)
    assert set(atoms.get_tags()) == {0, 1, 2}
    z = [np.unique(atoms.positions[atoms.get_tags() == k, 2].round(6)) for k in range(3)]
    np.testing.assert_allclose(z[1] - z[0], m.interlayer_A)
    np.testing.assert_allclose(z[2] - z[1], m.interlayer_A)
    # layer 2 = layer 1 moved by the second slip
    from scipy.spatial import cKDTree

    pos = atoms.positions
    tags = atoms.get_tags()
    d2 = m.slip_to_cartesian((0.2, 0.7))
    dist, _ = cKDTree(pos[tags == 1, :2] + d2).query(pos[tags == 2, :2])
    inner = np.all((pos[tags == 2, :2] > 2) & (pos[tags == 2, :2] < 18), axis=1)
    assert dist[inner].max() < 1e-9


def test_vacancies_and_jitter():
    clean = build_stack("ReS2", [(0, 0)], fov_A=(40, 40), margin_A=5, seed=1)
    holes = build_stack("ReS2", [(0, 0)], fov_A=(40, 40), margin_A=5, vacancy_ratio=0.1, seed=1)
    assert len(holes) / len(clean) == pytest.approx(0.9, abs=0.02)
    jit = build_stack("ReS2", [(0, 0)], fov_A=(40, 40), margin_A=5, jitter_z_A=0.5,
                      jitter_xy_A=0.1, seed=2)
    d = jit.positions - clean.positions
    assert np.abs(d[:, :2]).max() <= 0.1 and np.abs(d[:, 2]).max() <= 0.5
    assert np.abs(d[:, 2]).max() > 0.4
    again = build_stack("ReS2", [(0, 0)], fov_A=(40, 40), margin_A=5, jitter_z_A=0.5,
                        jitter_xy_A=0.1, seed=2)
    np.testing.assert_array_equal(jit.positions, again.positions)


def test_twisted_layers_are_rotated_and_extend_past_fov():
    theta = 13.0
    atoms = build_twisted("MoS2", theta, fov_A=(60, 60), margin_A=8)
    tags = atoms.get_tags()
    top = atoms.positions[tags == 1]
    xy = top[:, :2]
    assert xy[:, 0].min() < -7 and xy[:, 0].max() > 67
    assert xy[:, 1].min() < -7 and xy[:, 1].max() > 67
    # nearest-neighbour Mo-Mo directions in the top layer are rotated by theta
    mo = xy[atoms.numbers[tags == 1] == 42]
    c = mo[np.argmin(np.linalg.norm(mo - 30, axis=1))]
    d = mo - c
    near = d[(np.linalg.norm(d, axis=1) > 3.0) & (np.linalg.norm(d, axis=1) < 3.3)]
    angles = np.degrees(np.arctan2(near[:, 1], near[:, 0])) % 60
    assert np.allclose(angles, theta, atol=1e-6)


def test_moire_period():
    assert moire_period_A("MoS2", 1.5) == pytest.approx(3.18 / (2 * math.sin(math.radians(0.75))))


@pytest.mark.parametrize(
    "kwargs",
    [dict(fov_A=(-1, 10)), dict(fov_A=(10, 1e6)), dict(vacancy_ratio=1.5),
     dict(slips_A=[(np.nan, 0)]), dict(interlayer_A=0.5), dict(jitter_z_A=-1)],
)
def test_absurd_parameters_raise_usage_error(kwargs):
    args = dict(slips_A=[(0.0, 0.0)], fov_A=(10, 10))
    args.update(kwargs)
    with pytest.raises(UsageError):
        build_stack("MoS2", **args)

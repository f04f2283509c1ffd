"""PELs of both stacking families (issue 17): the antiparallel bilayer, its energy symmetry (D ≡ g·D
for the projected operations g, not D ≡ −D), files with the family, the class marks of the plot,
``stackview pel --family``, and the shipped grids of MoS2, MoSe2 and WS2 (CHGNet + D3)."""

import json

import numpy as np
import pytest

from stackview.cli import main
from stackview.core.labels import projected_symmetry_ops
from stackview.errors import UsageError
from stackview.materials import get_material
from stackview.pel import files as pel_files
from stackview.pel.compute import bilayer_cell, compute_landscape, point_energy
from stackview.pel.landscape import (
    PEL_FORMAT,
    Landscape,
    PelSettings,
    class_marks,
    grid_orbits,
    slip_symmetry_ops,
    summarize,
)

DELTA = np.array([1 / 3, 2 / 3])  # the chalcogen site, fractional
HEXAGONAL = ("MoS2", "MoSe2", "WS2")


def lj_calculator():
    """A cheap species-blind pair potential (module level, so workers can build it)."""
    from ase.calculators.lj import LennardJones

    return LennardJones(epsilon=0.01, sigma=3.0, rc=8.0, smooth=True)


def _slip(material, frac):
    m = get_material(material)
    return np.asarray(frac, dtype=float) * [m.a_A, m.b_A]


def _images(material, slip_A):
    """g·D for the projected point operations g of the monolayer (as slip labels, Å)."""
    m = get_material(material)
    d = m.slip_to_cartesian(slip_A)
    return [m.cartesian_to_slip(g @ d) for g in projected_symmetry_ops(m)]


def _need_default_calculator():
    pytest.importorskip("chgnet", reason="CHGNet is not installed (pip install 'stackview[pel]')")
    pytest.importorskip("dftd3", reason="dftd3 is not installed (pip install 'stackview[pel]')")


# --- the structure and the symmetry ------------------------------------------------------------
def test_antiparallel_cell_is_the_layer_turned_about_its_metal():
    m = get_material("MoS2")
    cell = m.cell_2d

    def over(atoms, top_index, bottom_symbol):
        """Whether atom ``top_index`` (top layer) sits over a bottom atom of the species."""
        tags, sym, xy = atoms.get_tags(), np.array(atoms.get_chemical_symbols()), atoms.positions
        bottom = xy[(tags == 0) & (sym == bottom_symbol), :2]
        f = (bottom - xy[top_index, :2]) @ np.linalg.inv(cell)
        return bool(np.min(np.linalg.norm((f - np.round(f)) @ cell, axis=1)) < 1e-4)

    zero = bilayer_cell(m, (0.0, 0.0), family="antiparallel")
    pos = zero.positions
    np.testing.assert_allclose(pos[3:, :2] - pos[3, :2], -(pos[:3, :2] - pos[0, :2]), atol=1e-9)
    np.testing.assert_allclose(pos[3:, 2] - pos[:3, 2], m.interlayer_A, atol=1e-9)
    # AB' (D = 0): metal over metal, the chalcogens over hollows
    assert over(zero, 3, "Mo") and not over(zero, 4, "S") and not over(zero, 4, "Mo")
    # AA' (D = δ, 2H): metal over chalcogen and chalcogen over metal
    aa = bilayer_cell(m, _slip(m, DELTA), family="antiparallel")
    assert over(aa, 3, "S") and over(aa, 4, "Mo") and over(aa, 5, "Mo")
    # A'B (D = −δ): chalcogen over chalcogen, the metal over a hollow
    ab = bilayer_cell(m, _slip(m, -DELTA), family="antiparallel")
    assert over(ab, 4, "S") and not over(ab, 3, "S") and not over(ab, 3, "Mo")
    # the parallel cell at the same D is different (top = bottom + D)
    par = bilayer_cell(m, _slip(m, DELTA))
    np.testing.assert_allclose(par.positions[3:, :2] - par.positions[:3, :2],
                               np.tile(m.slip_to_cartesian(_slip(m, DELTA)), (3, 1)), atol=1e-9)


def test_antiparallel_cell_matches_the_image_builder():
    """The PEL's antiparallel bilayer is the stack the simulated images are made of."""
    from stackview.materials import build_stack

    m = get_material("MoS2")
    inv = np.linalg.inv(m.cell_2d)

    def sites(atoms, ref, tag, symbol):
        """Fractional sites (mod the lattice) of one layer's atoms of a species, from ``ref``."""
        sel = (atoms.get_tags() == tag) & (np.array(atoms.get_chemical_symbols()) == symbol)
        f = (atoms.positions[sel, :2] - ref) @ inv % 1.0
        return {tuple(np.round(v, 4) % 1.0) for v in f}

    for slip in ((0.7, 1.9), (-1.1, 0.4)):
        cell = bilayer_cell(m, slip, family="antiparallel")
        stack = build_stack(m, [slip], fov_A=(8.0, 8.0), margin_A=2.0, antiparallel=True)
        assert stack.info["stackview"]["family"] == "antiparallel"
        ref = stack.positions[(stack.get_tags() == 0) & (stack.numbers == 42)][0, :2]
        for tag in (0, 1):
            for symbol in ("Mo", "S"):
                assert sites(cell, cell.positions[0, :2], tag, symbol) == sites(
                    stack, ref, tag, symbol)


@pytest.mark.parametrize("name", HEXAGONAL)
def test_antiparallel_symmetry_is_3m_without_minus_identity(name):
    anti = slip_symmetry_ops(name, family="antiparallel")
    par = slip_symmetry_ops(name, family="parallel")
    assert len(anti) == 6 and len(par) == 12
    minus = -np.eye(2, dtype=int)
    assert not any(np.array_equal(o, minus) for o in anti)
    assert any(np.array_equal(o, minus) for o in par)
    for f in anti:  # every antiparallel operation fixes δ (mod the lattice): AA' is one point
        d = DELTA @ f - DELTA
        assert np.allclose(d, np.round(d))
    reps = grid_orbits((12, 12), anti)
    assert reps[4, 8] != reps[8, 4]  # AA' (δ) and A'B (−δ) are different orbits
    assert len(np.unique(reps)) == 31


def test_families_only_for_materials_without_a_two_fold_axis():
    for name in ("ReS2", "ReSe2"):
        with pytest.raises(UsageError, match="no antiparallel family"):
            slip_symmetry_ops(name, family="antiparallel")
        with pytest.raises(UsageError, match="no antiparallel family"):
            bilayer_cell(name, (0.0, 0.0), family="antiparallel")
    with pytest.raises(UsageError, match="family"):
        PelSettings(family="sideways")


def test_antiparallel_energy_symmetry_with_a_pair_potential():
    """E(D) = E(g·D) for the projected operations g; E(δ) ≠ E(−δ) (no D ≡ −D)."""
    m = get_material("MoS2")
    calc = lj_calculator()
    settings = PelSettings(relax="none", family="antiparallel")

    def energy(slip):
        return point_energy(m, slip, calc, settings)["energy_eV"]

    for frac in ((0.13, 0.41), (0.27, 0.05)):
        d = _slip(m, frac)
        e0 = energy(d)
        images = [energy(g) for g in _images(m, d)]
        np.testing.assert_allclose(images, e0, atol=1e-9)
        assert abs(energy(-d) - e0) > 1e-5  # −D is not an energy symmetry
    assert abs(energy(_slip(m, DELTA)) - energy(_slip(m, -DELTA))) > 1e-3


def test_reduced_grid_equals_every_point_computed():
    """The orbit reduction of the antiparallel grid uses true symmetries only."""
    m = get_material("MoS2")
    n = 6
    land = compute_landscape(m, PelSettings(grid=n, relax="none", family="antiparallel"),
                             calculator=lj_calculator)
    assert land.family == "antiparallel" and land.provenance["family"] == "antiparallel"
    assert land.provenance["symmetry"]["points_computed"] < n * n
    calc = lj_calculator()
    settings = PelSettings(relax="none", family="antiparallel")
    direct = np.array([[point_energy(m, m.cartesian_to_slip(np.array([i, j]) / n @ m.cell_2d),
                                     calc, settings)["energy_eV"] for j in range(n)]
                       for i in range(n)])
    # equal up to the 6-digit rounding of the material file (~1e-4 meV here)
    np.testing.assert_allclose(land.energy_meV, (direct - direct.min()) * 1000, atol=1e-3)
    assert land.value_at_frac(1 / 3, 2 / 3) != pytest.approx(land.value_at_frac(2 / 3, 1 / 3))


# --- files -------------------------------------------------------------------------------------
def _anti_synthetic(n=6):
    m = get_material("MoS2")
    land = compute_landscape(m, PelSettings(grid=n, relax="none", family="antiparallel"),
                             calculator=lj_calculator)
    return m, land


def test_file_round_trip_keeps_the_family(tmp_path):
    m, land = _anti_synthetic()
    csv_path, json_path = pel_files.write_landscape(land, tmp_path / "anti.csv")
    prov = json.loads(json_path.read_text(encoding="utf-8"))
    assert prov["family"] == "antiparallel" and prov["format"] == PEL_FORMAT
    assert set(prov["summary"]["energy_at_class_meV"]) == {"AA'", "AB'", "A'B"}
    back = pel_files.read_landscape(csv_path)
    assert back.family == "antiparallel"
    np.testing.assert_allclose(back.energy_meV, land.energy_meV, atol=1e-4)
    assert pel_files.read_landscape(csv_path, family="antiparallel").family == "antiparallel"
    with pytest.raises(UsageError, match="antiparallel family, not of the parallel"):
        pel_files.read_landscape(csv_path, family="parallel")
    with pytest.raises(UsageError, match="antiparallel family, not of the parallel"):
        pel_files.load_landscape(csv_path, family="parallel")
    # a plain CSV imported as either family (the family's symmetry fills missing points)
    json_path.unlink()
    imported = pel_files.import_csv(csv_path, m, family="antiparallel")
    assert imported.family == "antiparallel" and imported.provenance["family"] == "antiparallel"
    assert pel_files.import_csv(csv_path, m).family == "parallel"
    with pytest.raises(UsageError, match="no antiparallel family"):
        pel_files.import_csv(csv_path, "ReS2", family="antiparallel")
    # cache and look-up per family
    cached = pel_files.cache_landscape(land)
    assert cached == pel_files.user_path(m, "antiparallel")
    assert cached.name == "MoS2_antiparallel.csv"
    assert pel_files.load_landscape(material="MoS2", family="antiparallel").family == "antiparallel"
    assert pel_files.load_landscape(material="MoS2").family == "parallel"


def test_energy_at_ignores_the_swap_in_the_antiparallel_family():
    m, land = _anti_synthetic()
    d = _slip(m, DELTA)
    assert land.energy_at(d, swap="min") == land.energy_at(d, swap="none")
    assert land.energy_at(d, swap="none") != pytest.approx(land.energy_at(-d, swap="none"))


# --- the plot ----------------------------------------------------------------------------------
def test_class_marks_at_their_positions():
    assert class_marks("MoS2") == [("AA", 0.0, 0.0), ("AB", 1 / 3, 2 / 3),
                                   ("BA", pytest.approx(2 / 3), pytest.approx(1 / 3))]
    anti = {name: (fa, fb) for name, fa, fb in class_marks("MoSe2", "antiparallel")}
    assert anti == {"AA'": pytest.approx((1 / 3, 2 / 3)), "AB'": (0.0, 0.0),
                    "A'B": pytest.approx((2 / 3, 1 / 3))}
    assert class_marks("ReS2") == []


def test_plot_names_the_classes_of_its_family(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from stackview.pel.plot import plot_data, plot_landscape, write_landscape_figure

    m, anti = _anti_synthetic()
    a, b = m.a_A, m.b_A
    par = Landscape(m, anti.energy_meV, None, {"family": "parallel"})
    expected = {"antiparallel": {"AA\u2032": (a / 3, 2 * b / 3), "AB\u2032": (0.0, 0.0),
                                 "A\u2032B": (2 * a / 3, b / 3)},
                "parallel": {"AA": (0.0, 0.0), "AB": (a / 3, 2 * b / 3), "BA": (2 * a / 3, b / 3)}}
    slips = np.array([[1.0, 1.0]])
    for land in (anti, par):
        want = expected[land.family]
        data = plot_data(land, slips)
        assert data["family"] == land.family
        got = {name: pts for name, pts in data["classes"]}
        assert set(got) == set(want)
        for name, pos in want.items():
            np.testing.assert_allclose(got[name][0], pos, atol=1e-9)
        np.testing.assert_allclose(got["AB\u2032" if land.family == "antiparallel" else "AA"],
                                   [[0, 0], [0, b], [a, 0], [a, b]], atol=1e-9)  # the corners
        # the canonical domain: the family's triangle
        third = {"antiparallel": (2 * a / 3, b / 3), "parallel": (a / 2, b / 2)}[land.family]
        np.testing.assert_allclose(data["domain_A"], [[0, 0], [a / 3, 2 * b / 3], third, [0, 0]],
                                   atol=1e-9)
        assert len(data["swapped_A"]) == (0 if land.family == "antiparallel" else 1)
        fig, ax = plt.subplots()
        try:
            plot_landscape(ax, land, slips, colorbar=False)
            texts = {t.get_text(): t.xy for t in ax.texts}
            assert set(texts) == set(want)
            for name, pos in want.items():
                np.testing.assert_allclose(texts[name], pos, atol=1e-9)
                line = next(ln for ln in ax.lines if ln.get_label() == f"_class {name}")
                np.testing.assert_allclose(line.get_xydata()[0], pos, atol=1e-9)
            assert land.family in ax.get_title()
        finally:
            plt.close(fig)
    assert write_landscape_figure(tmp_path / "anti.png", anti, slips).exists()


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_family(tmp_path, capsys):
    m, land = _anti_synthetic()
    src, _ = pel_files.write_landscape(land, tmp_path / "src.csv")
    src.with_suffix(".json").unlink()
    out = tmp_path / "out.csv"
    assert main(["pel", "--material", "MoS2", "--family", "antiparallel", "--import", str(src),
                 "--out", str(out), "--figure", str(tmp_path / "pel.png")]) == 0
    text = capsys.readouterr().out
    assert "antiparallel family" in text and "AA' " in text and "A'B " in text
    assert json.loads(out.with_suffix(".json").read_text())["family"] == "antiparallel"
    assert pel_files.user_path("MoS2", "antiparallel").exists()
    assert not pel_files.user_path("MoS2").exists()  # the parallel cache is untouched
    assert main(["pel", "--material", "ReS2", "--family", "antiparallel", "--grid", "3"]) == 2
    err = capsys.readouterr().err
    assert "no antiparallel family" in err and len(err.strip().splitlines()) == 1


def test_cli_family_reuses_the_shipped_grid(capsys):
    shipped = pel_files.read_landscape(pel_files.shipped_path("MoS2", "antiparallel"))
    grid = str(shipped.shape[0])
    assert main(["pel", "--material", "MoS2", "--family", "antiparallel", "--grid", grid]) == 0
    text = capsys.readouterr().out
    assert "reused" in text and "MoS2_antiparallel.csv" in text and "antiparallel family" in text


# --- the shipped landscapes (CHGNet + D3, z relaxed) -------------------------------------------
@pytest.mark.parametrize("name", HEXAGONAL)
@pytest.mark.parametrize("family", ["parallel", "antiparallel"])
def test_shipped_family_landscapes(name, family):
    path = pel_files.shipped_path(name, family)
    assert path.name == (f"{name}.csv" if family == "parallel" else f"{name}_antiparallel.csv")
    land = pel_files.read_landscape(path, name, family)
    prov = land.provenance
    assert land.family == family and prov.get("family", "parallel") == family
    assert prov["calculator"]["name"] == "chgnet+d3" and prov["relax"] == "z"
    assert prov["relaxation"]["unconverged_points"] == 0 and not prov["notes"]
    assert prov["command"].startswith(f"stackview pel --material {name} ")
    assert ("--family antiparallel" in prov["command"]) == (family == "antiparallel")
    e = {k: land.value_at_frac(*v) for k, v in
         {"0": (0, 0), "d": (1 / 3, 2 / 3), "-d": (2 / 3, 1 / 3)}.items()}
    if family == "parallel":  # 3R: AB = BA minima, AA the maximum
        assert e["d"] == e["-d"] == 0.0 and e["0"] == pytest.approx(land.span_meV)
    else:  # 2H: AA' the minimum, A'B the maximum, AB' a little above AA'
        assert e["d"] == 0.0 and e["-d"] == pytest.approx(land.span_meV)
        assert 0 < e["0"] < 0.25 * land.span_meV
    assert 30 < land.span_meV < 90
    assert summarize(land)["energy_at_class_meV"]
    # the named minima only: AB and BA (3R) or AA' and AB' (2H), never a saddle
    from stackview.pel.plot import distinct_minima
    frac = distinct_minima(land)[:, :2] / [land.material.a_A, land.material.b_A]
    other = (2 / 3, 1 / 3) if family == "parallel" else (0, 0)
    expected = [(1 / 3, 2 / 3), other]
    assert sorted(map(tuple, np.round(frac, 3))) == sorted(map(tuple, np.round(expected, 3)))


@pytest.mark.parametrize("name", HEXAGONAL)
def test_shipped_families_are_nearly_degenerate(name):
    """AA' (2H) and AB (3R) within a few meV per cell (same calculator, same cells)."""
    lows = [pel_files.read_landscape(pel_files.shipped_path(name, f)).provenance[
        "minimum_energy_eV_per_cell"] for f in ("parallel", "antiparallel")]
    assert abs(lows[0] - lows[1]) * 1000 < 10


def test_antiparallel_mos2_with_chgnet_d3():
    """The 2H ground state AA' is the minimum; independent points at D and g·D agree."""
    _need_default_calculator()
    m = get_material("MoS2")
    pts = [(2, 4), (0, 0), (4, 2)]  # AA' (δ), AB' (0), A'B (−δ) on a 6×6 grid
    land = compute_landscape(m, PelSettings(grid=6, relax="z", family="antiparallel"),
                             points=pts)
    aa, ab, a_b = (land.value_at_frac(f[0] / 6, f[1] / 6) for f in pts)
    assert aa == 0.0 and 0 < ab < 15 and a_b > 40
    shipped = pel_files.read_landscape(pel_files.shipped_path(m, "antiparallel"))
    assert a_b == pytest.approx(shipped.value_at_frac(2 / 3, 1 / 3), abs=1.0)
    from stackview.pel.compute import make_calculator

    calc = make_calculator("chgnet+d3")
    settings = PelSettings(relax="none", family="antiparallel")
    d = _slip(m, (0.13, 0.41))
    e0 = point_energy(m, d, calc, settings)["energy_eV"]
    for g in _images(m, d):
        assert point_energy(m, g, calc, settings)["energy_eV"] == pytest.approx(e0, abs=2e-4)

"""Interlayer PEL: symmetry reduction, the job (cheap LJ calculator), files, import, cache, CLI,
plots, the shipped landscapes, and the MoS2 check with CHGNet + D3 (skipped without them)."""

import json
import math

import numpy as np
import pytest

from stackview.cli import main
from stackview.engine.jobs import CancelToken
from stackview.errors import Cancelled, UsageError
from stackview.materials import get_material
from stackview.pel import compute as pel_compute
from stackview.pel import files as pel_files
from stackview.pel import landscape as pel_landscape
from stackview.pel.compute import bilayer_cell, compute_landscape, point_energy
from stackview.pel.files import import_csv
from stackview.pel.landscape import Landscape, PelSettings, grid_orbits, slip_symmetry_ops


def lj_calculator():
    """A cheap pair potential (module-level, so worker processes can build it)."""
    from ase.calculators.lj import LennardJones

    return LennardJones(epsilon=0.01, sigma=3.0, rc=8.0, smooth=True)


def _synthetic(material="MoS2", n=6, span=50.0) -> Landscape:
    m = get_material(material)
    fa, fb = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    if material == "MoS2":  # invariant under the hexagonal slip symmetry
        e = np.cos(2 * math.pi * fa) + np.cos(2 * math.pi * fb) + np.cos(2 * math.pi * (fa - fb))
        e = span * (e - e.min()) / (e.max() - e.min())
    else:
        e = span * (1 + np.cos(2 * math.pi * fa) * np.cos(2 * math.pi * fb)) / 2
    return Landscape(m, e, None, {"format": pel_landscape.PEL_FORMAT, "source": "test"})


def _write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n"
                    + "".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


# --- symmetry --------------------------------------------------------------------------------
def test_symmetry_ops_mos2_and_res2():
    ops = slip_symmetry_ops("MoS2")
    assert len(ops) == 12  # p-6m2 acting on slips: C3, mirrors, σh (D -> -D)
    assert np.array_equal(ops[0], np.eye(2, dtype=int))
    assert any(np.array_equal(o, -np.eye(2, dtype=int)) for o in ops)
    # ReS2/ReSe2 (inversion only): no energy symmetry beyond periodicity, not even D -> -D
    for name in ("ReS2", "ReSe2"):
        assert [o.tolist() for o in slip_symmetry_ops(name)] == [[[1, 0], [0, 1]]]
    reps = grid_orbits((12, 12), ops)
    assert len(np.unique(reps)) == 19
    assert reps[4, 8] == reps[8, 4]  # AB and BA: same orbit
    assert reps[6, 0] == reps[0, 6] == reps[6, 6]  # the three saddles


def test_symmetry_ops_are_energy_symmetries():
    calc = lj_calculator()
    s = PelSettings(grid=6, relax="none")
    mos2 = get_material("MoS2")
    d = np.array([0.7, 0.4])
    e = point_energy(mos2, d, calc, s)["energy_eV"]
    for f in slip_symmetry_ops(mos2):
        frac = d / [mos2.a_A, mos2.b_A]
        d2 = (frac @ f) * [mos2.a_A, mos2.b_A]
        assert point_energy(mos2, d2, calc, s)["energy_eV"] == pytest.approx(e, abs=1e-9)
    res2 = get_material("ReS2")
    e1 = point_energy(res2, d, calc, s)["energy_eV"]
    e2 = point_energy(res2, -d, calc, s)["energy_eV"]
    e3 = point_energy(res2, d + [res2.a_A, 0], calc, s)["energy_eV"]
    assert e3 == pytest.approx(e1, abs=1e-9)
    assert abs(e1 - e2) > 1e-6  # the layer swap is only an imaging symmetry for ReS2


def test_bilayer_cell_geometry():
    m = get_material("ReS2")
    atoms = bilayer_cell(m, (1.0, 2.0), interlayer_A=6.5, vacuum_A=15.0)
    assert len(atoms) == 2 * m.n_atoms
    assert tuple(atoms.pbc) == (True, True, False)
    tags = atoms.get_tags()
    shift = atoms.positions[tags == 1] - atoms.positions[tags == 0]
    assert np.allclose(shift[:, :2], m.slip_to_cartesian([1.0, 2.0]))
    assert np.allclose(shift[:, 2], 6.5)
    assert atoms.cell[2, 2] == pytest.approx(6.5 + m.thickness_A + 15.0)


def test_settings_validation():
    for bad in (dict(grid=1), dict(grid=200), dict(relax="xy"), dict(interlayer_A=40.0),
                dict(fmax_eV_A=0.0), dict(vacuum_A=2.0)):
        with pytest.raises(UsageError):
            PelSettings(**bad)


# --- the job ---------------------------------------------------------------------------------
def test_compute_rigid_and_z_with_progress():
    calls = []
    land = compute_landscape("MoS2", PelSettings(grid=6, relax="none"), calculator=lj_calculator,
                             progress=lambda d, t, m="": calls.append((d, t)))
    assert land.shape == (6, 6) and land.energy_meV.min() == 0.0
    assert calls[-1] == (7, 7)  # 36 points, 7 symmetry orbits
    assert land.provenance["symmetry"]["points_computed"] == 7
    assert land.value_at_frac(1 / 3, 2 / 3) == pytest.approx(land.value_at_frac(2 / 3, 1 / 3))
    z = compute_landscape("MoS2", PelSettings(grid=3, relax="z", fmax_eV_A=0.05),
                          calculator=lj_calculator())
    assert z.provenance["relaxation"]["steps_total"] > 0
    assert np.all(np.isfinite(z.spacing_A))
    assert z.provenance["format"] == pel_landscape.PEL_FORMAT


def test_compute_cancel():
    token = CancelToken()

    def progress(done, total, message=""):
        if done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        compute_landscape("ReS2", PelSettings(grid=3, relax="none"), calculator=lj_calculator,
                          progress=progress, cancel=token)


def test_compute_parallel_matches_serial():
    s = PelSettings(grid=3, relax="none")
    serial = compute_landscape("ReS2", s, calculator=lj_calculator)
    parallel = compute_landscape("ReS2", s, calculator=lj_calculator, workers=2)
    assert np.allclose(serial.energy_meV, parallel.energy_meV, atol=1e-6)
    with pytest.raises(UsageError):
        compute_landscape("ReS2", s, calculator=lj_calculator(), workers=2)


# --- files, import, cache --------------------------------------------------------------------
def test_write_read_roundtrip(tmp_path):
    land = _synthetic("ReS2", n=6)
    csv_path, json_path = pel_files.write_landscape(land, tmp_path / "res2.csv")
    prov = json.loads(json_path.read_text())
    assert prov["summary"]["span_meV"] == pytest.approx(50.0, abs=0.01)
    back = pel_files.read_landscape(csv_path)
    assert back.material.name == "ReS2"
    assert np.allclose(back.energy_meV, land.energy_meV, atol=1e-3)
    with pytest.raises(UsageError):
        pel_files.write_landscape(land, tmp_path / "res2.txt")


def test_import_variants(tmp_path):
    m = get_material("MoS2")
    n = 4
    rows = [(i / n, j / n, 0.001 * (i + j)) for i in range(n + 1) for j in range(n + 1)]
    # fractional columns, eV, periodic copies at fraction 1 (dropped)
    land = import_csv(_write_csv(tmp_path / "a.csv", ["frac_a", "frac_b", "energy_eV"], rows), m)
    assert land.shape == (4, 4)
    assert land.energy_meV[3, 3] == pytest.approx(6.0)
    assert land.provenance["source"] == "imported"
    # Å columns, a comment line, MoS2 half-grid filled by symmetry (D ≡ -D for MoS2)
    full = _synthetic("MoS2", n=6)
    da, db, e = full.grid_arrays()
    half = [(da[i, j], db[i, j], e[i, j]) for i in range(6) for j in range(4)]
    path = _write_csv(tmp_path / "b.csv", ["Da_A", "Db_A", "energy_meV"], half)
    path.write_text("# my DFT\n" + path.read_text())
    filled = import_csv(path, m)
    assert np.allclose(filled.energy_meV, full.energy_meV, atol=1e-9)


@pytest.mark.parametrize("header,rows,match", [
    (["Da", "Db", "E"], [(0, 0, 0), (1, 1, 1)], "unit"),
    (["Da_A", "Db_A", "E"], [(0, 0, 0), (1, 1, 1)], "energy_meV or energy_eV"),
    (["frac_a", "frac_b", "energy_meV"], [(0, 0, 0), (0.5, "x", 1)], "not a list of numbers"),
    (["frac_a", "frac_b", "energy_meV"], [(0, 0, 0), (0.5, 2.0, 1)], "within one cell"),
    (["frac_a", "frac_b", "energy_meV"],
     [(0, 0, 0), (0.5, 0, 1), (0, 0.5, 2)], "missing"),
    (["frac_a", "frac_b", "energy_meV"],
     [(0, 0, 0), (0.31, 0, 1), (0.5, 0, 1), (0, 0.5, 1)], "regular grid"),
    (["frac_a", "frac_b", "energy_meV"],
     [(0, 0, 0), (0, 0, 5), (0.5, 0, 1), (0, 0.5, 1), (0.5, 0.5, 1)], "two energies"),
    (["frac_a", "frac_b", "energy_meV"], [], "no data rows"),
])
def test_import_rejects_with_one_sentence(tmp_path, header, rows, match):
    path = _write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(UsageError, match=match) as info:
        import_csv(path, "ReS2")
    assert "\n" not in str(info.value)


def test_cache_and_lookup(tmp_path, monkeypatch):
    land = _synthetic("ReSe2", n=4)
    path = pel_files.cache_landscape(land)
    assert path == pel_files.user_path("ReSe2") and path.with_suffix(".json").exists()
    assert np.allclose(pel_files.load_landscape(None, "ReSe2").energy_meV, land.energy_meV,
                       atol=1e-3)
    path.unlink()
    monkeypatch.setattr(pel_files, "shipped_path",
                        lambda m, family="parallel": tmp_path / "none.csv")
    with pytest.raises(UsageError, match="no landscape for ReSe2"):
        pel_files.load_landscape("auto", "ReSe2")
    with pytest.raises(UsageError, match="does not exist"):
        pel_files.load_landscape(tmp_path / "missing.csv", "ReSe2")


# --- plots -----------------------------------------------------------------------------------
def test_plot_and_scatter(tmp_path):
    from stackview.pel.plot import (
        distinct_minima,
        plot_data,
        scatter_points,
        write_landscape_figure,
    )

    land = _synthetic("ReS2", n=8)
    slips = np.array([[1.0, 1.5], [7.0, -0.5], [np.nan, 1.0]])
    direct, swapped = scatter_points(land, slips)
    assert direct.shape == (2, 2) and np.all(direct >= 0)
    f = (direct + swapped) / [land.material.a_A, land.material.b_A]
    assert np.allclose(f, np.round(f), atol=1e-9)  # -D is D's layer-swap image mod the lattice
    a, b = land.material.a_A, land.material.b_A
    np.testing.assert_allclose(direct, [[1.0, 1.5], [7.0 - a, b - 0.5]], atol=1e-12)
    mins = distinct_minima(land)
    # the cosine's two minima per cell: (0, |b|/2) and (|a|/2, 0), at zero energy
    np.testing.assert_allclose(mins[np.lexsort(mins.T[:2])], [[a / 2, 0, 0], [0, b / 2, 0]],
                               atol=1e-9)
    da, db, e = land.grid_arrays(closed=True)
    assert da.shape == e.shape == (9, 9) and db[0, -1] == pytest.approx(b)
    np.testing.assert_array_equal(e[:8, :8], land.energy_meV)
    np.testing.assert_array_equal(e[8], e[0])  # closed: the cell's far edge repeats the first
    data = plot_data(land, slips)
    np.testing.assert_array_equal(data["energy_meV"], e)
    np.testing.assert_array_equal(data["slips_A"], direct)
    np.testing.assert_array_equal(data["swapped_A"], swapped)
    np.testing.assert_array_equal(data["minima"], mins)
    # the figure draws the landscape, the minima and the slips (red: no viridis colour)
    from PIL import Image

    def red_pixels(path):
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        return int(((rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum())

    out = write_landscape_figure(tmp_path / "pel.png", land, slips)
    bare = write_landscape_figure(tmp_path / "bare.png", land)
    assert Image.open(out).size == (720, 600)  # 6 × 5 in at 120 dpi
    assert red_pixels(out) > 20 and red_pixels(bare) == 0
    # what the figure's axes hold: the heat map of the energies, the minima, D and −D
    import matplotlib.pyplot as plt

    from stackview.pel.plot import plot_landscape

    fig, ax = plt.subplots()
    try:
        mesh = plot_landscape(ax, land, slips, colorbar=False)
        np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(e.shape), e)
        scatter = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label()}
        np.testing.assert_array_equal(scatter["slips D (2)"], direct)
        np.testing.assert_array_equal(scatter["layer swap −D"], swapped)
        marked = next(line for line in ax.lines if line.get_label() == "minima").get_xydata()
        for m in mins:  # each minimum is marked (with its periodic copies on the edges)
            assert np.min(np.hypot(*(marked - m[:2]).T)) < 1e-9
        assert ax.get_xlim() == (0, a) and ax.get_ylim() == (0, b)
    finally:
        plt.close(fig)


def test_caveats_flag_overbinding():
    land = _synthetic("ReS2", n=4)
    assert pel_landscape.caveats(land) == []
    short = Landscape(land.material, land.energy_meV, np.full((4, 4), 5.7),
                      {"relax": "z", "notes": []})
    assert "overbinds" in pel_landscape.caveats(short)[0]


def test_energy_at_interpolates_and_folds():
    land = _synthetic("ReS2", n=8)
    m = land.material
    assert land.energy_at([0.0, 0.0]) == pytest.approx(50.0)
    assert land.energy_at([m.a_A / 2, 0.0], swap="none") == pytest.approx(0.0)
    e = land.energy_at(np.array([[0.3, 0.2], [0.3 + m.a_A, 0.2 - m.b_A]]), swap="none")
    assert e[0] == pytest.approx(e[1])


# --- CLI -------------------------------------------------------------------------------------
def test_cli_import_figure_and_errors(tmp_path, capsys):
    land = _synthetic("ReS2", n=6)
    src, _ = pel_files.write_landscape(land, tmp_path / "src.csv")
    src.with_suffix(".json").unlink()  # a plain user CSV
    slips = _write_csv(tmp_path / "map.csv", ["x_nm", "y_nm", "Da_A", "Db_A"],
                       [(0, 0, 1.0, 1.5), (0.5, 0, 1.1, 1.4)])
    code = main(["pel", "--material", "ReS2", "--import", str(src), "--out",
                 str(tmp_path / "out.csv"), "--figure", str(tmp_path / "pel.png"), "--slips",
                 str(slips)])
    assert code == 0
    assert pel_files.user_path("ReS2").exists() and (tmp_path / "out.json").exists()
    assert (tmp_path / "pel.png").exists()
    assert "span 50.0 meV/cell" in capsys.readouterr().out
    bad = _write_csv(tmp_path / "bad.csv", ["Da", "Db", "E"], [(0, 0, 0), (1, 1, 1)])
    assert main(["pel", "--material", "ReS2", "--import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stackview: error:") and len(err.strip().splitlines()) == 1
    assert main(["pel", "--material", "ReS2", "--grid", "1"]) == 2


def test_cli_compute_cache_and_reuse(tmp_path, capsys):
    _need_default_calculator()
    args = ["pel", "--material", "MoS2", "--grid", "3", "--relax", "none", "--calculator",
            "chgnet", "--out", str(tmp_path / "mos2.csv")]
    assert main(args) == 0
    assert "computed in" in capsys.readouterr().out
    prov = json.loads((tmp_path / "mos2.json").read_text())
    assert prov["command"] == ("stackview pel --material MoS2 --grid 3 --relax none "
                               f"--calculator chgnet --out {tmp_path / 'mos2.csv'}")
    assert pel_files.user_path("MoS2").exists()
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out


# --- the shipped landscapes ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["MoS2", "ReS2", "ReSe2"])
def test_shipped_landscapes(name):
    path = pel_files.shipped_path(name)
    if not path.exists():
        pytest.fail(f"{path} is not shipped")
    land = pel_files.read_landscape(path)
    prov = land.provenance
    assert prov["command"].startswith(f"stackview pel --material {name} ")
    assert prov["calculator"]["name"] == "chgnet+d3" and prov["relax"] == "z"
    assert prov["calculator"]["packages"]["dftd3"]["licence"]
    assert prov["relaxation"]["unconverged_points"] == 0 and not prov["notes"]
    assert land.span_meV > 10 and np.all(np.isfinite(land.spacing_A))


def test_shipped_mos2_ordering():
    land = pel_files.read_landscape(pel_files.shipped_path("MoS2"))
    aa, saddle = land.value_at_frac(0, 0), land.value_at_frac(0.5, 0.5)
    ab, ba = land.value_at_frac(1 / 3, 2 / 3), land.value_at_frac(2 / 3, 1 / 3)
    assert aa == pytest.approx(land.span_meV)  # AA is the maximum
    assert ab == ba == 0.0
    assert 40 < aa < 70 and 6 < saddle < 18 and aa > 3 * saddle


# --- the default calculator (CHGNet + D3) ----------------------------------------------------
def _need_default_calculator():
    pytest.importorskip("chgnet", reason="CHGNet is not installed (pip install 'stackview[pel]')")
    pytest.importorskip("dftd3", reason="dftd3 is not installed (pip install 'stackview[pel]')")


def test_mos2_ordering_chgnet_d3():
    """The issue's check: AA max (~55) >> saddle (~11) > AB/BA minimum (0), meV/cell."""
    _need_default_calculator()
    pts = [(0, 0), (2, 4), (3, 3)]  # AA, AB (1/3, 2/3), saddle (1/2, 1/2) on a 6×6 grid
    land = compute_landscape("MoS2", PelSettings(grid=6, relax="z"), points=pts)
    aa, ab, ba = land.value_at_frac(0, 0), land.value_at_frac(1 / 3, 2 / 3), \
        land.value_at_frac(2 / 3, 1 / 3)
    saddle = land.value_at_frac(0.5, 0.5)
    assert ab == ba == 0.0
    assert 40 < aa < 70, aa
    assert 6 < saddle < 18, saddle
    assert aa > 3 * saddle
    spacing = land.spacing_A
    assert 5.6 < spacing[2, 4] < 6.4 and spacing[0, 0] > spacing[2, 4]  # AA sits further apart
    assert land.provenance["calculator"]["packages"]["chgnet"]["version"]
    # the shipped landscape is reproduced (same structures, settings and calculator)
    shipped = pel_files.read_landscape(pel_files.shipped_path("MoS2"))
    assert land.provenance["minimum_energy_eV_per_cell"] == pytest.approx(
        shipped.provenance["minimum_energy_eV_per_cell"], abs=2e-3)
    assert aa == pytest.approx(shipped.value_at_frac(0, 0), abs=1.0)
    assert saddle == pytest.approx(shipped.value_at_frac(0.5, 0.5), abs=1.0)


def test_mos2_without_d3_has_no_binding():
    _need_default_calculator()
    land = compute_landscape("MoS2", PelSettings(grid=6, relax="z"), calculator="chgnet",
                             points=[(0, 0), (2, 4)])
    assert land.provenance["notes"] and "drifted apart" in land.provenance["notes"][0]
    assert pel_landscape.caveats(land)[0] == land.provenance["notes"][0]
    assert np.nanmax(land.spacing_A) > 8.0


def test_missing_default_calculator_is_one_sentence(monkeypatch):
    import sys

    for name in ("chgnet", "chgnet.model", "chgnet.model.dynamics"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(UsageError, match=r"needs CHGNet: install it with pip install"):
        pel_compute.make_calculator("chgnet+d3")
    with pytest.raises(UsageError, match="unknown PEL calculator"):
        pel_compute.make_calculator("vasp")


def test_compute_restores_torch_threads():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        compute_landscape("MoS2", PelSettings(grid=2, relax="none"), calculator=lj_calculator,
                          threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

"""Built-in MoSe2 and WS2 (issue 17): cells from ase.build.mx2 with literature lattice constants,
in the convention of MoS2.json, simulated with both imaging presets, listed by the CLI."""

import json

import numpy as np
import pytest

from stackview.cli import main
from stackview.core.labels import projected_symmetry, projected_symmetry_ops
from stackview.materials import build_stack, get_material
from stackview.materials.catalog import BUILTIN_DIR, BUILTIN_RECIPES, material_from_mx2
from stackview.simulation import PRESETS, simulate
from stackview.simulation.optics import DEFAULT_OPTICS

#: Schutte, de Boer & Jellinek, J. Solid State Chem. 70, 207 (1987): a, c (Å), z(chalcogen),
#: chalcogen-chalcogen thickness (Å)
LITERATURE = {"MoSe2": (3.288, 12.927, 0.621, 3.34), "WS2": (3.153, 12.323, None, 3.14)}


@pytest.mark.parametrize("name", ["MoSe2", "WS2"])
def test_cell_matches_literature_and_mos2_convention(name):
    a, c, z, thickness = LITERATURE[name]
    m = get_material(name)
    assert m.a_A == pytest.approx(a, abs=1e-6) and m.b_A == pytest.approx(a, abs=1e-6)
    assert m.gamma_deg == pytest.approx(120.0, abs=1e-4)
    assert m.a_vec_A[1] == 0 and m.a_vec_A[0] > 0 and m.b_vec_A[1] > 0
    assert m.thickness_A == pytest.approx(thickness, abs=0.006)
    if z is not None:  # thickness = (1.5 - 2 z)·c for the chalcogen at (1/3, 2/3, z)
        assert m.thickness_A == pytest.approx((1.5 - 2 * z) * c, abs=1e-3)
    assert m.interlayer_A == pytest.approx(c / 2, abs=0.005)
    lit = m.literature
    assert lit["a_A"] == a and lit["c_A"] == c and "Schutte" in lit["reference"]
    assert lit["interlayer_A"] == pytest.approx(c / 2, abs=0.005)
    # same layout as MoS2.json: metal at (0, 0), both chalcogens at (1/3, 2/3), ±thickness/2
    mos2 = get_material("MoS2")
    assert m.symbols[0] in ("Mo", "W") and len(m.symbols) == 3
    np.testing.assert_allclose(m.frac_ab, mos2.frac_ab, atol=1e-6)
    np.testing.assert_allclose(m.z_A, [0.0, -m.thickness_A / 2, m.thickness_A / 2], atol=1e-6)
    np.testing.assert_allclose(m.unit_vectors, mos2.unit_vectors, atol=1e-6)


@pytest.mark.parametrize("name", ["MoSe2", "WS2"])
def test_shipped_json_is_what_the_recipe_makes(name):
    data = json.loads((BUILTIN_DIR / f"{name}.json").read_text(encoding="utf-8"))
    made = material_from_mx2(name, BUILTIN_RECIPES[name]).to_dict()
    made["literature"] = BUILTIN_RECIPES[name]["literature"]
    assert data == json.loads(json.dumps(made))


@pytest.mark.parametrize("name", ["MoSe2", "WS2"])
def test_projected_symmetry_like_mos2(name):
    assert projected_symmetry(name) == projected_symmetry("MoS2") == (3, True)
    assert len(projected_symmetry_ops(name)) == 6


def _first_shell_g(image: np.ndarray, sampling_A: float) -> float:
    """|g| (1/Å) of the strongest reflection between 0.2 and 0.5 1/Å (Hann window, 4× zero
    padding, parabolic refinement)."""
    img = image.astype(float) - image.mean()
    n = img.shape[0]
    w = np.hanning(n)
    pad = 4 * n
    power = np.abs(np.fft.fft2(img * w[:, None] * w[None, :], s=(pad, pad))) ** 2
    f = np.fft.fftfreq(pad, d=sampling_A)
    fx, fy = np.meshgrid(f, f)
    r = np.hypot(fx, fy)
    power[(r < 0.2) | (r > 0.5)] = 0
    i, j = np.unravel_index(np.argmax(power), power.shape)

    def vertex(lo, mid, hi):
        return 0.5 * (lo - hi) / (lo - 2 * mid + hi)

    di = vertex(power[i - 1, j], power[i, j], power[(i + 1) % pad, j])
    dj = vertex(power[i, j - 1], power[i, j], power[i, (j + 1) % pad])
    step = f[1] - f[0]
    return float(np.hypot(fx[i, j] + dj * step, fy[i, j] + di * step))


@pytest.mark.parametrize("preset", ["MoS2-60kV", "ReS2-300kV"])
def test_simulated_mose2_bilayer_has_its_lattice_peaks(preset):
    fov, sampling = 80.0, 0.25
    atoms = build_stack("MoSe2", slips_A=[(0.5, 0.3)], fov_A=(fov, fov), margin_A=10.0)
    image = simulate(atoms, PRESETS[preset], sampling, fov).image
    assert np.all(np.isfinite(image)) and image.std() > 0
    g = _first_shell_g(image, sampling)
    assert g == pytest.approx(2 / (np.sqrt(3) * 3.288), rel=1e-3)  # first shell of a = 3.288 Å
    assert abs(g - 2 / (np.sqrt(3) * 3.18)) > 0.01  # and not MoS2's


def test_default_optics_is_the_mos2_preset():
    assert DEFAULT_OPTICS["MoSe2"] == DEFAULT_OPTICS["WS2"] == DEFAULT_OPTICS["MoS2"]


def test_cli_lists_and_simulates_them(capsys, tmp_path):
    assert main(["materials", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("MoSe2", "WS2"):
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        assert "built-in" in line
    assert main(["materials", "show", "MoSe2"]) == 0
    assert "3.2880" in capsys.readouterr().out
    for name, preset, kv in (("MoSe2", None, 60.0), ("WS2", None, 60.0),
                             ("WS2", "ReS2-300kV", 300.0)):
        img = tmp_path / f"{name}_{kv:g}.tif"
        extra = ["--preset", preset] if preset else []
        assert main(["simulate", "--material", name, "--slip", "0", "0", "--fov", "1",
                     "--sampling", "0.2", *extra, "--out", str(img)]) == 0
        meta = json.loads(img.with_suffix(".json").read_text())
        assert meta["material"] == name and meta["optics"]["energy_kV"] == kv

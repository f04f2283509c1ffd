"""``stackview analyze --pel``: the analysis figure gets the slips-on-PEL panel."""

import math

import numpy as np
import pytest

from stackview.cli import main
from stackview.io.tiff import write_calibrated_tiff
from stackview.materials import build_stack, get_material
from stackview.pel import files as pel_files
from stackview.pel import landscape as pel_landscape
from stackview.pel import plot as pel_plot
from stackview.simulation import PRESETS, simulate


@pytest.fixture(scope="module")
def res2_image(tmp_path_factory):
    fov = (40.0, 40.0)
    atoms = build_stack("ReS2", [(1.0, 1.5)], fov_A=fov, margin_A=10)
    img = simulate(atoms, PRESETS["ReS2-300kV"], sampling_A=0.15, fov_A=fov).image
    path = tmp_path_factory.mktemp("img") / "res2.tif"
    write_calibrated_tiff(path, img, 0.015)
    return path


@pytest.fixture
def res2_landscape_csv(tmp_path):
    m = get_material("ReS2")
    fa, fb = np.meshgrid(np.arange(6) / 6, np.arange(6) / 6, indexing="ij")
    e = 20 * (1 + np.cos(2 * math.pi * fa) * np.cos(2 * math.pi * fb))
    land = pel_landscape.Landscape(m, e, None,
                                   {"format": pel_landscape.PEL_FORMAT, "source": "test"})
    return pel_files.write_landscape(land, tmp_path / "res2_pel.csv")[0]


def test_analyze_pel_panel(tiny_bundle, res2_image, res2_landscape_csv, tmp_path, monkeypatch):
    drawn = []
    original = pel_plot.plot_landscape

    def spy(ax, landscape, slips_A=None, **kw):
        drawn.append((landscape.material.name, np.asarray(slips_A).shape))
        return original(ax, landscape, slips_A, **kw)

    monkeypatch.setattr(pel_plot, "plot_landscape", spy)
    out = tmp_path / "out"
    code = main(["analyze", str(res2_image), "--model", str(tiny_bundle), "--stride", "1.0",
                 "--views", "1", "--out", str(out), "--pel", str(res2_landscape_csv)])
    assert code == 0
    assert (out / "res2" / "figure.png").exists()
    assert len(drawn) == 1 and drawn[0][0] == "ReS2" and drawn[0][1][1] == 2
    assert drawn[0][1][0] > 0
    # the material's own landscape (user cache first, then shipped) with a bare --pel
    pel_files.cache_landscape(pel_files.read_landscape(res2_landscape_csv))
    assert main(["analyze", str(res2_image), "--model", str(tiny_bundle), "--stride", "1.0",
                 "--views", "1", "--out", str(out), "--pel"]) == 0
    assert len(drawn) == 2


def test_analyze_pel_errors_before_work(tiny_bundle, res2_image, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["analyze", str(res2_image), "--model", str(tiny_bundle), "--out", str(out),
                 "--pel", str(tmp_path / "missing.csv")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()
    mos2 = pel_files.read_landscape(pel_files.shipped_path("MoS2"))
    pel_files.write_landscape(mos2, tmp_path / "mos2.csv")
    assert main(["analyze", str(res2_image), "--model", str(tiny_bundle), "--out", str(out),
                 "--pel", str(tmp_path / "mos2.csv")]) == 2
    assert "is a landscape for MoS2, not for ReS2" in capsys.readouterr().err

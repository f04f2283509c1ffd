"""The analysis job end to end with a tiny untrained model: files, geometry, errors."""

import csv
import json

import numpy as np
import pytest

from stackview.analysis.analyze import analyze_image, write_results
from stackview.cli import main
from stackview.io.tiff import read_tiff_pixel_size_nm, write_calibrated_tiff
from stackview.materials import build_stack
from stackview.simulation import PRESETS, simulate


@pytest.fixture(scope="module")
def res2_image(tmp_path_factory):
    fov = (60.0, 60.0)
    atoms = build_stack("ReS2", [(1.0, 1.5)], fov_A=fov, margin_A=10)
    img = simulate(atoms, PRESETS["ReS2-300kV"], sampling_A=0.15, fov_A=fov).image
    path = tmp_path_factory.mktemp("img") / "res2.tif"
    write_calibrated_tiff(path, img, 0.015)
    return path


def test_analyze_writes_all_outputs(tiny_bundle, res2_image, tmp_path):
    result = analyze_image(res2_image, model=str(tiny_bundle), stride_nm=0.5, n_views=1)
    assert result.calibration.source == "metadata"
    assert result.frame is not None and len(result.frame_scores) >= 2
    folder = write_results(result, tmp_path)
    assert folder == tmp_path / "res2"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["figure.png", "map.csv", "map_Da_A.tif", "map_Db_A.tif",
                     "map_ncc.tif", "map_uncertainty.tif", "summary.json"]
    assert not list(tmp_path.glob(".*partial"))
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("material", "task", "model", "pixel_size_nm", "calibration_source", "window_nm",
                "stride_nm", "n_patches", "seconds", "patches_per_second", "Da_A_median",
                "Da_A_iqr", "Db_A_median", "Db_A_iqr"):
        assert key in summary
    assert summary["window_nm"] == pytest.approx(0.8)
    rows = list(csv.DictReader(open(folder / "map.csv")))
    n_grid = result.smap.values.shape[0] * result.smap.values.shape[1]
    assert len(rows) == summary["n_patches"] == n_grid
    xs = sorted({float(r["x_nm"]) for r in rows})
    assert np.allclose(np.diff(xs), 0.5, atol=1e-3)
    assert min(xs) >= 0.4 - 1e-3 and max(xs) <= 6.0 - 0.4 + 1e-3
    assert read_tiff_pixel_size_nm(folder / "map_Da_A.tif") == pytest.approx(0.5)


def test_analyze_cli_folder_and_stats(tiny_bundle, res2_image, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["analyze", str(res2_image.parent), "--model", str(tiny_bundle), "--stride",
                 "1.0", "--views", "1", "--device", "cpu", "--out", str(out)])
    assert code == 0
    assert (out / "res2" / "summary.json").exists()
    # one image in the folder: no stats.csv needed, but two images give one
    second = res2_image.parent / "res2_copy.tif"
    second.write_bytes(res2_image.read_bytes())
    code = main(["analyze", str(res2_image.parent), "--model", str(tiny_bundle), "--stride",
                 "1.0", "--views", "1", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(open(out / "stats.csv")))
    assert [r["image"] for r in rows] == ["res2.tif", "res2_copy.tif"]
    second.unlink()


def test_analyze_errors_leave_nothing(tiny_bundle, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00broken")
    out = tmp_path / "out"
    assert main(["analyze", str(bad), "--model", str(tiny_bundle), "--out", str(out)]) == 2
    assert not out.exists() or not any(out.iterdir())
    assert main(["analyze", str(bad), "--out", str(out)]) == 2  # no model, no material
    assert main(["analyze", str(bad), "--model", str(tiny_bundle), "--stride", "-1",
                 "--out", str(out)]) == 2
    assert main(["analyze", str(bad), "--model", str(tiny_bundle), "--device", "tpu9",
                 "--out", str(out)]) == 2
    import torch

    if not torch.cuda.is_available():
        assert main(["analyze", str(bad), "--model", str(tiny_bundle), "--device", "cuda",
                     "--out", str(out)]) == 2


def test_window_ncc_of_a_refined_map_fills_cells_from_the_nearest_coarse_window():
    """score_windows on a two-level map: refined cells carry their own window's NCC, the other
    fine cells the nearest coarse window's (as the labels do)."""
    from stackview.analysis.trust import score_windows
    from stackview.inference.spm import SpmMap

    cx = cy = np.array([1.0, 2.0, 3.0])
    fx = fy = np.arange(1.0, 3.01, 0.5)
    coarse = [(x, y, 10 * x + y, 0.0, 0.0, 0) for y in cy for x in cx]
    fine = [(1.5, 1.5, 99.0, 0.0, 0.0, 1), (2.5, 3.0, 77.0, 0.0, 0.0, 1)]
    pts = np.array(coarse + fine, dtype=float)
    smap = SpmMap(fx, fy, np.zeros((5, 5, 2)), np.zeros((5, 5)), ("Da_A", "Db_A"), 0.8, 0.5,
                  "refine", pts)

    class Sampler:
        def extract(self, centres):
            return np.zeros((len(centres), 4, 4))

    class Resim:  # the "NCC" is the first label, so every cell says where it came from
        def ncc(self, window, values):
            return float(values[0])

    score_windows(None, 1.0, smap, Sampler(), Resim())
    assert np.array_equal(smap.ncc_points, pts[:, 2])
    assert smap.ncc[1, 1] == 99.0 and smap.ncc[4, 3] == 77.0
    assert smap.ncc[0, 0] == 11.0 and smap.ncc[4, 4] == 33.0  # coarse windows themselves
    assert smap.ncc[0, 4] == 31.0  # fine cell (x 3, y 1): coarse window (3, 1)
    assert not np.isnan(smap.ncc).any()

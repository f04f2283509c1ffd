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

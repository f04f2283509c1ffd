"""Trust in the outputs: per-window re-simulation NCC in map.csv and map_ncc.tif, the figure's
marks for an unreliable result and for poorly matched windows, a figure of a large image in
bounded memory, and the CLI's / batch statistics' handling of unreliable images."""

import csv
import json
import tracemalloc

import numpy as np
import pytest
from trust_fakes import make_result, make_smap

from stackview.analysis.batch import batch_statistics, is_reliable, stats_row
from stackview.analysis.export import (
    FIGURE_MAX_PX,
    POOR_WINDOW_NCC,
    build_figure,
    display_copy,
    poor_window_runs,
    write_figure,
    write_map_csv,
    write_map_tiffs,
)
from stackview.cli import main
from stackview.models.bundle import load_bundle

RED_REASON = "the best re-simulation NCC is 0.08, so no lattice frame matches the image"


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def _ncc_grid(ny=5, nx=6):
    ncc = np.linspace(0.2, 0.95, ny * nx).reshape(ny, nx)
    ncc[0, 1] = np.nan  # not scored
    return ncc


# --- map.csv and TIFFs --------------------------------------------------------------------------
def test_map_csv_has_an_ncc_column_only_when_scored(tmp_path):
    ncc = _ncc_grid()
    ncc[0, 0] = 0.81236
    write_map_csv(tmp_path / "map.csv", make_smap(ncc=ncc))
    rows = list(csv.reader(open(tmp_path / "map.csv")))
    assert rows[0] == ["x_nm", "y_nm", "Da_A", "Db_A", "uncertainty_A", "level", "ncc"]
    assert len(rows) == 1 + 30
    assert rows[1][-1] == "0.8124"
    assert rows[2][-1] == ""  # NaN: the window was not scored
    assert [float(r[-1]) for r in rows[3:]] == pytest.approx(ncc.ravel()[2:], abs=5e-5)
    assert rows[1][:6] == ["0.5000", "0.5000", "1.0000", "1.5000", "0.0500", "0"]
    write_map_csv(tmp_path / "plain.csv", make_smap(ncc=None))
    assert next(csv.reader(open(tmp_path / "plain.csv")))[-1] == "level"


def test_map_csv_refuses_misaligned_ncc(tmp_path):
    smap = make_smap(ncc=_ncc_grid())
    smap.ncc_points = smap.ncc_points[:-1]
    with pytest.raises(ValueError, match="29 values for 30 windows"):
        write_map_csv(tmp_path / "map.csv", smap)


def test_map_ncc_tiff(tmp_path):
    import tifffile

    from stackview.io.tiff import read_tiff_pixel_size_nm

    ncc = _ncc_grid()
    paths = write_map_tiffs(tmp_path, make_smap(ncc=ncc, stride_nm=0.5))
    assert [p.name for p in paths] == ["map_Da_A.tif", "map_Db_A.tif", "map_uncertainty.tif",
                                       "map_ncc.tif"]
    data = tifffile.imread(tmp_path / "map_ncc.tif")
    assert data.dtype == np.float32 and data.shape == (5, 6)
    np.testing.assert_array_equal(data, ncc.astype(np.float32))
    assert read_tiff_pixel_size_nm(tmp_path / "map_ncc.tif") == pytest.approx(0.5)
    other = tmp_path / "plain"
    other.mkdir()
    assert "map_ncc.tif" not in [p.name for p in write_map_tiffs(other, make_smap())]


# --- the figure ---------------------------------------------------------------------------------
def test_display_copy_is_an_exact_block_average():
    img = np.arange(10 * 7, dtype=np.float32).reshape(10, 7)
    shown, f = display_copy(img, max_px=4)
    assert f == 3 and shown.shape == (4, 3)
    assert shown[0, 0] == pytest.approx(img[:3, :3].mean())
    assert shown[1, 2] == pytest.approx(img[3:6, 6:].mean())  # a partial last column
    assert shown[3, 2] == pytest.approx(img[9:, 6:].mean())  # the corner: one pixel
    same, f1 = display_copy(img, max_px=10)
    assert f1 == 1 and same.dtype == np.float32
    np.testing.assert_array_equal(same, img)


def test_poor_window_runs_cover_the_poor_cells():
    ncc = np.full((5, 6), 0.9)
    ncc[1, 2:5] = POOR_WINDOW_NCC - 0.01  # one run of three cells
    ncc[3, 0] = 0.1
    ncc[3, 1] = POOR_WINDOW_NCC  # not below: not poor
    ncc[3, 5] = np.nan  # not scored: not poor
    runs = poor_window_runs(make_smap(ncc=ncc))
    assert runs == [pytest.approx((2.0, 1.0, 3.0, 1.0)), pytest.approx((0.0, 3.0, 1.0, 1.0))]
    assert poor_window_runs(make_smap()) == []


def _rgb(fig):
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)


def _is_red(rgb):
    return (rgb[..., 0] > 170) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)


def test_unreliable_figure_has_a_red_banner_and_red_map_frames():
    import matplotlib.pyplot as plt

    smap = make_smap()
    image = np.zeros((400, 400), dtype=np.float32)
    fig = build_figure(image, 0.015, smap, title="res2", reliable=False,
                       reliability_reason=RED_REASON)
    texts = [t.get_text().replace("\n", " ") for t in fig.texts]
    assert texts == [f"UNRELIABLE — {RED_REASON}"]
    rgb = _rgb(fig)
    top = rgb[:8]  # the figure's top rows: the banner, across the whole width
    assert _is_red(top).mean() > 0.99
    image_ax, da_ax, db_ax = fig.axes[:3]
    for ax in (image_ax, da_ax, db_ax):
        assert all(s.get_linewidth() == 4 for s in ax.spines.values())
        assert all(s.get_edgecolor()[:3] == pytest.approx((0.835, 0.0, 0.0), abs=0.01)
                   for s in ax.spines.values())
    # the map panels are hatched red over their whole extent
    hatched = [p for p in da_ax.patches if p.get_hatch() == "//"]
    assert len(hatched) == 1 and hatched[0].get_width() == pytest.approx(6.0)
    plt.close(fig)

    fig = build_figure(image, 0.015, smap, title="res2")
    assert fig.texts == [] and not _is_red(_rgb(fig)[:8]).any()
    assert not [p for p in fig.axes[1].patches if p.get_hatch()]
    plt.close(fig)


def test_poor_windows_are_greyed_and_counted():
    import matplotlib.pyplot as plt

    ncc = np.full((5, 6), 0.9)
    ncc[2, 3] = POOR_WINDOW_NCC - 0.2
    smap = make_smap(ncc=ncc)
    fig = build_figure(np.zeros((400, 400), dtype=np.float32), 0.015, smap)
    da_ax = fig.axes[1]
    assert da_ax.get_xlabel() == (f"x (nm)\nhatched grey: re-simulation NCC < "
                                  f"{POOR_WINDOW_NCC:g} (1 of 30 windows)")
    rgb = _rgb(fig)
    height = rgb.shape[0]

    def cell_colour(x_nm, y_nm):
        # the cell's middle, away from the cell edges: the mean over a few pixels
        px, py = da_ax.transData.transform((x_nm, y_nm))
        r, c = int(round(height - py)), int(round(px))
        return rgb[r - 4:r + 5, c - 4:c + 5].reshape(-1, 3).mean(axis=0)

    good, poor = cell_colour(2.5, 2.5), cell_colour(3.5, 2.5)
    # the good cell is the map's colour (viridis, strongly coloured); the poor one is greyed:
    # its channels are much closer together
    assert np.ptp(good) > 60
    assert np.ptp(poor) < 0.6 * np.ptp(good)
    assert np.abs(good - cell_colour(1.5, 3.5)).max() < 3  # the other good cells look alike
    plt.close(fig)


def test_large_image_figure_is_drawn_block_averaged_in_bounded_memory(tmp_path):
    import matplotlib.pyplot as plt

    n = 6144
    image = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)  # 144 MiB
    px = 32.0 / n
    smap = make_smap(ncc=_ncc_grid(), stride_nm=5.0)
    fig = build_figure(image, px, smap)
    drawn = fig.axes[0].images[0].get_array()
    assert max(drawn.shape) <= FIGURE_MAX_PX and drawn.shape == (1024, 1024)
    assert fig.axes[0].get_xlim() == pytest.approx((0, 32.0))  # the nm extent is exact
    assert fig.axes[0].get_ylim() == pytest.approx((32.0, 0))
    plt.close(fig)
    tracemalloc.start()
    try:
        write_figure(tmp_path / "figure.png", image, px, smap, reliable=False,
                     reliability_reason=RED_REASON)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # drawn at full resolution this took ~15 bytes a pixel (2 GB here); block-averaged, the
    # figure's memory does not grow with the image
    assert peak < 0.7 * image.nbytes, f"peak {peak / 2**20:.0f} MiB"
    assert (tmp_path / "figure.png").stat().st_size > 10_000


# --- batch statistics and the CLI ---------------------------------------------------------------
def test_batch_statistics_flag_and_exclude_unreliable_rows(bundle):
    rows = [stats_row(make_result(bundle, "a.tif", (1.0, 1.5))),
            stats_row(make_result(bundle, "b.tif", (2.0, 0.5))),
            stats_row(make_result(bundle, "c.tif", (9.0, 9.0), reliable=False,
                                  reason=RED_REASON)),
            stats_row(make_result(bundle, "d.tif", (3.0, 2.5)))]
    assert list(rows[2])[:6] == ["image", "n_windows", "pixel_size_nm", "calibration",
                                 "reliable", "reliable_reason"]
    assert rows[2]["reliable"] is False and rows[2]["reliable_reason"] == RED_REASON
    assert rows[0]["reliable_reason"] == ""
    stats = batch_statistics(rows)
    assert stats.n_images == 4 and stats.n_reliable == 3
    assert stats.unreliable == [("c.tif", RED_REASON)]
    assert stats.labels["Da_A"] == {"median": 2.0, "iqr": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert stats.labels["Db_A"]["median"] == 1.5
    assert stats.headline() == ("statistics over 4 images; 1 unreliable (c.tif): marked in "
                                "stats.csv and excluded from the aggregate")
    assert stats.aggregate_lines()[0] == ("Da_A: median of the image medians 2.000 (IQR 1.000, "
                                          "range 1.000 to 3.000) over 3 reliable images")
    # rows read back from a stats.csv hold strings
    read_back = [{k: str(v) for k, v in r.items()} for r in rows]
    assert [is_reliable(r) for r in read_back] == [True, True, False, True]
    assert batch_statistics(read_back).labels == stats.labels
    none = batch_statistics([rows[2]])
    assert none.aggregate_lines() == ["no reliable image: no aggregate statistics"]
    assert is_reliable({"image": "old.tif"})  # a row from before the flag


def test_cli_warns_marks_and_excludes_unreliable_images(bundle, tiny_bundle, tmp_path,
                                                        monkeypatch, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    made = {"a.tif": dict(values=(1.0, 1.5), ncc=np.full((5, 6), 0.9)),
            "b.tif": dict(values=(2.0, 0.5)),
            "c.tif": dict(values=(9.0, 9.0), ncc=np.full((5, 6), 0.08), reliable=False,
                          reason=RED_REASON)}
    for name in made:
        (folder / name).write_bytes(b"")  # never read: analyze_image is replaced below

    def fake_analyze(path, **kwargs):
        return make_result(bundle, path.name, folder=path.parent, **made[path.name])

    monkeypatch.setattr("stackview.analysis.analyze.analyze_image", fake_analyze)
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "--model", str(tiny_bundle), "--device", "cpu",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    warnings = [k for k, line in enumerate(lines) if "WARNING" in line]
    assert len(warnings) == 1
    assert lines[warnings[0]] == f"  WARNING: unreliable: {RED_REASON}"
    assert lines[warnings[0] - 1].startswith("c.tif: 30 windows")
    assert lines[-3] == (f"statistics over 3 images; 1 unreliable (c.tif): marked in stats.csv "
                         f"and excluded from the aggregate -> {out / 'stats.csv'}")
    assert lines[-2] == ("  Da_A: median of the image medians 1.500 (IQR 0.500, range 1.000 to "
                         "2.000) over 2 reliable images")
    assert lines[-1].startswith("  Db_A: median of the image medians 1.000 (IQR 0.500,")
    rows = list(csv.DictReader(open(out / "stats.csv")))
    assert [(r["image"], r["reliable"], r["reliable_reason"]) for r in rows] == [
        ("a.tif", "True", ""), ("b.tif", "True", ""), ("c.tif", "False", RED_REASON)]
    assert rows[2]["Da_A_median"] == "9.0"  # kept, only marked
    summary = json.loads((out / "c" / "summary.json").read_text())
    assert summary["reliable"] is False and summary["reliable_reason"] == RED_REASON
    assert next(csv.reader(open(out / "a" / "map.csv")))[-1] == "ncc"
    assert (out / "a" / "map_ncc.tif").exists() and not (out / "b" / "map_ncc.tif").exists()


def test_the_pel_figure_keeps_the_unreliable_mark(bundle, tmp_path):
    from matplotlib.image import imread

    from stackview.pel.figure import add_pel_to_figure, landscape_for_bundle

    result = make_result(bundle, "c.tif", ncc=np.full((5, 6), 0.1), reliable=False,
                         reason=RED_REASON)
    path = add_pel_to_figure(result, tmp_path, landscape_for_bundle("auto", bundle))
    rgb = (imread(path)[..., :3] * 255).astype(int)
    assert _is_red(rgb[:8]).mean() > 0.99  # the banner across the top, as without the PEL

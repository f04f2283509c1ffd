"""The window marks what cannot be trusted: the results panel and the viewer show an unreliable
result in red with its reason, the calibration confidence and the scan distortion; poorly
matched windows are greyed and a clicked window's NCC is shown; the batch panel marks unreliable
rows and leaves them out of its aggregate exactly as the CLI does (offscreen, pytest-qt)."""

import csv

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():  # the process would abort, taking the rest of the suite with it
    pytest.skip(binding_problem(), allow_module_level=True)

from PySide6.QtCore import Qt  # noqa: E402
from trust_fakes import make_lattice, make_result  # noqa: E402

from stackview.analysis.batch import batch_statistics, stats_row  # noqa: E402
from stackview.analysis.trust import POOR_WINDOW_NCC  # noqa: E402
from stackview.cli import main  # noqa: E402
from stackview.io.tiff import write_calibrated_tiff  # noqa: E402
from stackview.models.bundle import load_bundle  # noqa: E402
from qt_fixtures import isolated_settings, window  # noqa: E402, F401

JOB_TIMEOUT_MS = 30_000
REASON = "the windows match the re-simulated stacks poorly (median NCC 0.21)"


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def wait_idle(qtbot, w):
    qtbot.waitUntil(lambda: not w.busy(), timeout=JOB_TIMEOUT_MS)


def show(w, result):
    """Show a hand-made result as if the analysis of its image had just returned."""
    w.current_path = str(result.path)
    w.viewer.set_image(result.image, result.calibration.pixel_size_nm)
    w.results[w.current_path] = result
    w.show_result(result)


def _poor_ncc():
    ncc = np.full((5, 6), 0.9)
    ncc[2, 3] = 0.1  # the window at (3.5, 2.5) nm
    ncc[0, 0] = np.nan  # not scored
    return ncc


def test_unreliable_result_is_red_with_its_reason_confidence_and_distortion(qtbot, window,
                                                                            bundle):
    result = make_result(bundle, "bad.tif", ncc=_poor_ncc(), reliable=False, reason=REASON,
                         lattice=make_lattice())
    show(window, result)
    panel = window.results_panel
    assert panel.trust.isVisible()
    assert panel.trust.text() == f"UNRELIABLE — {REASON}"
    # red, not just said: the label's pixels are red
    colour = panel.trust.grab().toImage().pixelColor(3, 3)
    assert (colour.red(), colour.green(), colour.blue()) == (0xC6, 0x28, 0x28)
    lines = panel.stats.text().splitlines()
    assert lines[1].startswith("pixel 0.015 nm (metadata, confidence 0.88), window 0.8 nm")
    assert lines[2] == "lattice reading: confidence 0.42, best re-simulation NCC 0.31"
    assert lines[3] == ("scan distortion (undone): fast-scan scale +1.20 %, slow-scan scale "
                        "-0.40 %, shear +0.30 %")
    assert lines[4] == (f"re-simulation check: 1 of 29 windows below NCC {POOR_WINDOW_NCC:g} "
                        "(greyed on the map)")
    # the banner over the image says the same
    assert window.viewer.warning.isVisible()
    assert window.viewer.warning.text() == f"UNRELIABLE — {REASON}"
    # the poor window is greyed over the map, the others are not
    expected = np.zeros((5, 6), dtype=bool)
    expected[2, 3] = True
    np.testing.assert_array_equal(window.viewer.poor_mask(), expected)
    assert window.viewer.poor_item.isVisible()
    assert window.viewer.readout_text(3.5, 2.5).endswith(" · NCC 0.10")
    # the NCC map is one of the layers, on a fixed 0-1 scale
    assert panel.layer.findText("re-simulation NCC") >= 0
    panel.layer.setCurrentText("re-simulation NCC")
    np.testing.assert_array_equal(window.viewer.map_values, result.smap.ncc)
    assert tuple(window.viewer.colorbar.levels()) == (0.0, 1.0)
    # hiding the map hides the grey cells with it
    panel.show_map.setChecked(False)
    assert not window.viewer.poor_item.isVisible()


def test_reliable_result_and_a_new_image_clear_the_marks(qtbot, window, bundle):
    show(window, make_result(bundle, "bad.tif", ncc=_poor_ncc(), reliable=False,
                             reason=REASON))
    good = make_result(bundle, "good.tif", ncc=np.full((5, 6), 0.9))
    show(window, good)
    panel = window.results_panel
    assert panel.trust.text() == ("Reliable: the windows match their re-simulations "
                                  "(median NCC 0.90)")
    colour = panel.trust.grab().toImage().pixelColor(3, 3)
    assert colour.red() < 0xC0 or colour.green() > 0x60  # not the red banner
    assert not window.viewer.warning.isVisible()
    assert not window.viewer.poor_mask().any() and not window.viewer.poor_item.isVisible()
    assert "lattice reading" not in panel.stats.text()  # none was made
    # no re-simulation check at all: said, and no NCC layer
    show(window, make_result(bundle, "plain.tif"))
    assert panel.trust.text() == "Reliable (no re-simulation check was made)"
    assert panel.layer.findText("re-simulation NCC") < 0
    assert window.viewer.poor_mask() is None
    window.viewer.set_image(good.image, 0.015)  # another image: its marks go
    assert not window.viewer.warning.isVisible()


def test_clicking_a_window_shows_its_ncc(qtbot, window, bundle):
    result = make_result(bundle, "bad.tif", ncc=_poor_ncc(), reliable=False, reason=REASON)
    show(window, result)
    job = window.pick_window(3.4, 2.6)
    assert job is not None
    # at once, before the re-simulation returns
    assert window.inspector.info.text() == (
        f"Window at (3.50, 2.50) nm: re-simulation NCC 0.10 in the analysis (poor: below "
        f"{POOR_WINDOW_NCC:g}, the labels do not reproduce this window); re-simulating it…")
    wait_idle(qtbot, window)
    assert window.last_error is None, window.last_error and window.last_error.text()
    ins = window.inspection
    assert ins.analysis_ncc == pytest.approx(0.1) and ins.ncc_threshold == POOR_WINDOW_NCC
    text = window.inspector.info.text()
    assert text.startswith("Window at (3.50, 2.50) nm: Da_A 1.000, Db_A 1.500; NCC with the "
                           "re-simulation ")
    assert text.endswith("; re-simulation NCC 0.10 in the analysis (poor: below "
                         f"{POOR_WINDOW_NCC:g}, the labels do not reproduce this window)")
    window.pick_window(0.4, 0.6)  # the window that was not scored
    assert "no re-simulation NCC in the analysis" in window.inspector.info.text()
    wait_idle(qtbot, window)
    window.pick_window(1.5, 1.5)  # a good one: no "poor"
    assert window.inspector.info.text().startswith(
        "Window at (1.50, 1.50) nm: re-simulation NCC 0.90 in the analysis; re-simulating")
    wait_idle(qtbot, window)


def test_batch_panel_marks_and_excludes_unreliable_rows_as_the_cli(qtbot, window, bundle,
                                                                    tiny_bundle, tmp_path,
                                                                    monkeypatch):
    from stackview.gui.batch_panel import UNRELIABLE_BACKGROUND

    folder = tmp_path / "images"
    folder.mkdir()
    made = {"a.tif": dict(values=(1.0, 1.5), ncc=np.full((5, 6), 0.9)),
            "b.tif": dict(values=(9.0, 9.0), ncc=np.full((5, 6), 0.1), reliable=False,
                          reason=REASON),
            "c.tif": dict(values=(2.0, 0.5))}
    for name in made:  # small real files: the window opens the first one it lists
        write_calibrated_tiff(folder / name, np.random.default_rng(0).normal(size=(64, 64)),
                              0.015)

    def fake(path, **kwargs):
        return make_result(bundle, path.name, folder=path.parent, **made[path.name])

    monkeypatch.setattr("stackview.gui.tasks.run_analysis",
                        lambda path, settings, progress=None, cancel=None: fake(path))
    monkeypatch.setattr("stackview.analysis.analyze.analyze_image", fake)
    window.open_paths([str(folder)])
    wait_idle(qtbot, window)
    assert window.run_batch() is not None
    wait_idle(qtbot, window)
    assert window.last_error is None, window.last_error and window.last_error.text()
    table = window.batch_panel.table
    assert table.rowCount() == 3
    columns = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    assert columns[4] == "reliable" and columns[-1] == "reliable_reason"  # the sentence last
    bad_row = [table.item(1, j) for j in range(table.columnCount())]
    assert bad_row[0].text() == "b.tif" and bad_row[4].text() == "False"
    assert bad_row[-1].text() == REASON
    assert all(item.background().color() == UNRELIABLE_BACKGROUND for item in bad_row)
    assert all(item.font().bold() for item in bad_row)
    assert bad_row[0].toolTip() == f"Unreliable, left out of the aggregate: {REASON}"
    assert table.item(0, 0).background().style() == Qt.BrushStyle.NoBrush  # a reliable row
    info = window.batch_panel.info.text().splitlines()
    assert info == [
        "statistics over 3 images; 1 unreliable (b.tif): marked in stats.csv and excluded "
        "from the aggregate",
        "Da_A: median of the image medians 1.500 (IQR 0.500, range 1.000 to 2.000) over 2 "
        "reliable images",
        "Db_A: median of the image medians 1.000 (IQR 0.500, range 0.500 to 1.500) over 2 "
        "reliable images"]
    # the GUI's stats.csv and aggregate are the CLI's
    window.export_batch(tmp_path / "gui")
    wait_idle(qtbot, window)
    assert main(["analyze", str(folder), "--model", str(tiny_bundle), "--device", "cpu",
                 "--out", str(tmp_path / "cli")]) == 0
    gui_rows = list(csv.DictReader(open(tmp_path / "gui" / "stats.csv")))
    cli_rows = list(csv.DictReader(open(tmp_path / "cli" / "stats.csv")))
    assert gui_rows == cli_rows and len(gui_rows) == 3
    assert batch_statistics(cli_rows).labels == window.batch_panel.statistics.labels
    rows = [stats_row(fake(folder / n)) for n in made]
    assert batch_statistics(rows).unreliable == [("b.tif", REASON)]


def test_fft_panel_of_a_large_image_reads_only_its_central_crop():
    import tracemalloc

    from stackview.gui.plots import MAX_FFT_PX, log_power_spectrum

    image = np.random.default_rng(2).standard_normal((5000, 4000), dtype=np.float32)  # 76 MiB
    tracemalloc.start()
    try:
        spectrum = log_power_spectrum(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    r0, c0 = (5000 - MAX_FFT_PX) // 2, (4000 - MAX_FFT_PX) // 2
    crop = image[r0:r0 + MAX_FFT_PX, c0:c0 + MAX_FFT_PX].copy()
    np.testing.assert_array_equal(spectrum, log_power_spectrum(crop))
    # converting the whole image to float64 first took twice its size (153 MiB here); the crop's
    # spectrum takes ~40 MiB whatever the image
    assert peak < 0.75 * image.nbytes, f"peak {peak / 2**20:.0f} MiB"

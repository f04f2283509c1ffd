"""The desktop window on the background engine (pytest-qt, offscreen, tiny untrained model).

The GUI must show exactly the numbers the CLI writes, so the maps are compared value by value
with ``analyze_image`` and with ``stackview analyze``'s files.
"""

import csv
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():  # the process would abort, taking the rest of the suite with it
    pytest.skip(binding_problem(), allow_module_level=True)

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from stackview.analysis.analyze import analyze_image  # noqa: E402
from stackview.cli import main  # noqa: E402
from stackview.inference.regressor import RegressorSpec, build_regressor  # noqa: E402
from stackview.io.tiff import write_calibrated_tiff  # noqa: E402
from stackview.materials import build_stack  # noqa: E402
from stackview.models.bundle import save_bundle  # noqa: E402
from stackview.models.card import ModelCard  # noqa: E402
from stackview.simulation import PRESETS, simulate  # noqa: E402

JOB_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained 'tiny' ReS2 slip model reading windows in any orientation (no frame
    search, so the tests stay fast)."""
    spec = RegressorSpec(backbone="tiny", material="ReS2")
    stem = tmp_path_factory.mktemp("models") / "ReS2_tiny_gui"
    card = ModelCard(name="ReS2_tiny_gui", spec=spec.to_dict(), sampling_A=0.25, patch_px=32,
                     orientation="random", style="clean")
    save_bundle(stem, build_regressor(spec, seed=0), card)
    return stem


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Two small calibrated ReS2 images (6 nm, 0.015 nm/px) with different slips."""
    folder = tmp_path_factory.mktemp("images")
    fov = (60.0, 60.0)
    for name, slip in (("res2_a.tif", (1.0, 1.5)), ("res2_b.tif", (2.0, 0.5))):
        atoms = build_stack("ReS2", [slip], fov_A=fov, margin_A=10)
        img = simulate(atoms, PRESETS["ReS2-300kV"], sampling_A=0.15, fov_A=fov).image
        write_calibrated_tiff(folder / name, img, 0.015)
    return folder


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))


@pytest.fixture
def window(qtbot, tiny_model):
    from stackview.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.spm.add_model_path(str(tiny_model))
    w.spm.views.setValue(1)
    w.spm.stride_nm.setValue(1.0)
    yield w
    for job in list(w.jobs):
        job.cancel()
        job.wait(5000)


def wait_idle(qtbot, w, timeout=JOB_TIMEOUT_MS):
    qtbot.waitUntil(lambda: not w.busy(), timeout=timeout)


def open_image(qtbot, w, path):
    w.open_paths([str(path)])
    qtbot.waitUntil(lambda: str(path) in w.images and w.viewer.data is not None,
                    timeout=JOB_TIMEOUT_MS)
    wait_idle(qtbot, w)


def analyse(qtbot, w):
    job = w.run_analysis()
    assert job is not None
    wait_idle(qtbot, w)
    assert w.last_error is None, w.last_error and w.last_error.text()
    return w.results[w.current_path]


def test_drop_opens_image(qtbot, window, image_dir):
    path = image_dir / "res2_a.tif"
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.viewer.data is not None, timeout=JOB_TIMEOUT_MS)
    assert window.viewer.data.shape == (400, 400)
    assert window.viewer.pixel_size_nm == pytest.approx(0.015)
    assert window.viewer.extent_nm() == pytest.approx((6.0, 6.0))
    assert window.spm.pixel_size.value() == pytest.approx(0.015)
    assert window.spm.pixel_size_override() is None  # the file's calibration, as the CLI
    assert window.image_list.paths() == [path]
    # the cursor read-out is in nm and shows the pixel under it
    text = window.viewer.readout_text(0.02, 0.05)
    assert text.startswith("x 0.020 nm, y 0.050 nm")
    assert f"{window.viewer.data[3, 1]:.4g}" in text
    # the window square has the model's size (32 px at 0.25 Å = 0.8 nm)
    assert window.viewer.window_square.size().x() == pytest.approx(0.8)
    assert window.fft.spectrum is not None


def test_map_layer_equals_cli(qtbot, window, image_dir, tiny_model, tmp_path, monkeypatch):
    # the user's data folder (its cached landscapes come before the shipped ones): empty here
    monkeypatch.setenv("STACKVIEW_DATA_DIR", str(tmp_path / "data"))
    path = image_dir / "res2_a.tif"
    open_image(qtbot, window, path)
    result = analyse(qtbot, window)
    shown = window.viewer.map_values
    assert window.results_panel.layer.currentText() == "Da_A"
    expected = analyze_image(path, model=str(tiny_model), stride_nm=1.0, n_views=1)
    assert np.array_equal(result.smap.values, expected.smap.values)
    np.testing.assert_array_equal(shown, expected.smap.values[..., 0])
    # and the CLI's map file
    assert main(["analyze", str(path), "--model", str(tiny_model), "--stride", "1.0",
                 "--views", "1", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "res2_a" / "map.csv")))
    assert len(rows) == result.smap.n_patches
    cli_da = np.array([float(r["Da_A"]) for r in rows])
    np.testing.assert_allclose(cli_da, result.smap.points[:, 2], atol=6e-5)
    # the other label is one click away; the overlay covers the mapped area in nm
    window.results_panel.layer.setCurrentText("Db_A")
    np.testing.assert_array_equal(window.viewer.map_values, result.smap.values[..., 1])
    rect = window.viewer.map_rect
    assert rect.left() == pytest.approx(result.smap.x_nm[0] - result.smap.stride_nm / 2)
    assert rect.width() == pytest.approx(len(result.smap.x_nm) * result.smap.stride_nm)
    # PEL panel: one point per window over the shipped ReS2 landscape; the potential
    # overbinds ReS2 (DESIGN.md), and the panel must say so
    from stackview.materials import get_material
    from stackview.pel import files as pel_files
    from stackview.pel import landscape as pel_landscape

    assert len(window.pel.points.data) == result.smap.n_patches
    wait_idle(qtbot, window)
    shipped = pel_files.read_landscape(pel_files.shipped_path("ReS2"), "ReS2")
    assert window.pel.has_landscape
    np.testing.assert_array_equal(window.pel.landscape.image, shipped.energy_meV.T)
    title = window.pel.widget.getPlotItem().titleLabel.text
    assert "ReS2, meV/cell" in title and "qualitative" in title
    assert "overbinds" in window.pel.notes.text()
    # a landscape in the user's cache is drawn instead of the shipped one
    energy = np.add.outer(np.cos(np.linspace(0, 2 * np.pi, 8, endpoint=False)), np.arange(6.0))
    pel_files.cache_landscape(pel_landscape.Landscape(
        get_material("ReS2"), energy, None, {"format": pel_landscape.PEL_FORMAT, "source": "test"}))
    window.show_result(result)
    wait_idle(qtbot, window)
    np.testing.assert_allclose(window.pel.landscape.image, (energy - energy.min()).T, atol=1e-3)
    assert "qualitative" not in window.pel.widget.getPlotItem().titleLabel.text
    assert len(window.pel.points.data) == result.smap.n_patches
    window.results_panel.arrows.setChecked(True)
    assert sum(len(item.xData) for item in window.viewer.arrow_items
               if item.xData is not None) == 6 * result.smap.n_patches


def test_roi_analysis_covers_only_the_roi(qtbot, window, image_dir):
    open_image(qtbot, window, image_dir / "res2_a.tif")
    window.spm.use_roi.setChecked(True)
    assert window.viewer.roi.isVisible() and window.session.settings.use_roi
    assert window.session.roi_nm == pytest.approx(window.viewer.roi_nm())
    # the user drags the ROI: the session holds it
    window.viewer.roi.setPos((0.5, 0.5))
    assert window.session.roi_nm[:2] == pytest.approx((0.5, 0.5))
    roi = (1.0, 1.5, 4.0, 3.5)
    window.session.set_roi(roi)  # and the viewer shows what the session holds
    assert window.viewer.roi_nm() == pytest.approx(roi)
    window.spm.stride_nm.setValue(0.5)
    smap = analyse(qtbot, window).smap
    x, y = smap.points[:, 0], smap.points[:, 1]
    half = smap.window_nm / 2
    assert smap.n_patches > 4
    assert np.all(x - half >= roi[0] - 1e-6) and np.all(x + half <= roi[2] + 1e-6)
    assert np.all(y - half >= roi[1] - 1e-6) and np.all(y + half <= roi[3] + 1e-6)
    rect = window.viewer.map_rect
    assert rect.left() >= roi[0] and rect.right() <= roi[2]


def test_cancel_stops_within_a_second_and_window_stays_responsive(qtbot, window, image_dir):
    open_image(qtbot, window, image_dir / "res2_a.tif")
    window.spm.stride_nm.setValue(0.025)  # ~40 000 windows: far longer than the test
    window.spm.views.setValue(8)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    progress = []
    job = window.run_analysis()
    job.progressed.connect(lambda event: progress.append(event.done))  # Progress events
    assert window.spm.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: len(progress) >= 2, timeout=JOB_TIMEOUT_MS)
    qtbot.wait(500)
    assert window.busy()
    assert window.progress.isVisible() and window.progress.maximum() > 1
    # the event loop kept running while the job computed: the timer fired regularly
    gaps = np.diff(ticks)
    assert len(ticks) >= 10 and np.median(gaps) < 0.1
    start = time.perf_counter()
    with qtbot.waitSignal(job.cancelled, timeout=3000):
        window.spm.cancel_button.click()
    wait_idle(qtbot, window, 3000)
    assert time.perf_counter() - start < 1.5
    timer.stop()
    assert window.current_path not in window.results
    assert window.spm.run_button.isEnabled() and not window.spm.cancel_button.isEnabled()
    assert "cancelled" in window.status_text.text()
    assert window.last_error is None


def test_corrupt_file_gives_a_message_box_and_the_window_survives(qtbot, window, image_dir,
                                                                  tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00broken")
    window.open_paths([str(bad)])
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=JOB_TIMEOUT_MS)
    box = window.last_error
    assert box.text().startswith("Could not read broken.tif")
    assert box.text().count(".") >= 1 and "\n" not in box.text()
    assert "Traceback" in box.detailedText()
    box.close()
    window.last_error = None
    # still usable
    open_image(qtbot, window, image_dir / "res2_b.tif")
    assert window.viewer.data.shape == (400, 400)
    # choosing another material keeps the model's (a ReS2 model reads ReS2)
    window.spm.material.setCurrentText("MoS2")
    assert window.spm.material.currentText() == "ReS2"
    # a window the model cannot read is the library's sentence, not a crash
    window.spm.window_nm.setValue(2.0)
    window.run_analysis()
    wait_idle(qtbot, window)
    assert window.last_error.text().startswith("Model ReS2_tiny_gui analyses 0.80 nm windows")
    assert window.spm.run_button.isEnabled()


def test_export_writes_the_cli_files(qtbot, window, image_dir, tiny_model, tmp_path):
    path = image_dir / "res2_a.tif"
    open_image(qtbot, window, path)
    analyse(qtbot, window)
    window.export_results(tmp_path / "gui")
    wait_idle(qtbot, window)
    assert main(["analyze", str(path), "--model", str(tiny_model), "--stride", "1.0",
                 "--views", "1", "--out", str(tmp_path / "cli")]) == 0
    gui_files = sorted(p.name for p in (tmp_path / "gui" / "res2_a").iterdir())
    cli_files = sorted(p.name for p in (tmp_path / "cli" / "res2_a").iterdir())
    assert gui_files == cli_files == ["figure.png", "map.csv", "map_Da_A.tif", "map_Db_A.tif",
                                      "map_ncc.tif", "map_uncertainty.tif", "summary.json"]
    assert ((tmp_path / "gui" / "res2_a" / "map.csv").read_text()
            == (tmp_path / "cli" / "res2_a" / "map.csv").read_text())
    window.export_results(tmp_path / "svg", figure_format="svg")
    wait_idle(qtbot, window)
    assert (tmp_path / "svg" / "res2_a" / "figure.svg").stat().st_size > 1000


def test_pick_window_resimulates_and_exports_atoms(qtbot, window, image_dir, tmp_path):
    import ase.io

    open_image(qtbot, window, image_dir / "res2_a.tif")
    result = analyse(qtbot, window)
    job = window.pick_window(3.0, 3.0)
    assert job is not None
    wait_idle(qtbot, window)
    ins = window.inspection
    k = int(np.argmin(np.hypot(result.smap.points[:, 0] - 3.0, result.smap.points[:, 1] - 3.0)))
    assert (ins.x_nm, ins.y_nm) == tuple(result.smap.points[k, :2])
    np.testing.assert_array_equal(ins.values, result.smap.points[k, 2:4])
    assert ins.check.window.shape == ins.check.simulated.shape == (32, 32)
    assert -1 <= ins.check.ncc <= 1 and len(ins.atoms_px) > 10
    assert np.all((ins.atoms_px >= 0) & (ins.atoms_px < 32))
    assert window.viewer.picked.isVisible()
    assert window.viewer.picked.size().x() == pytest.approx(0.8)
    assert len(window.inspector.exp_curve.xData) == 32
    window.export_atoms(tmp_path / "window.xyz")
    wait_idle(qtbot, window)
    assert len(ase.io.read(tmp_path / "window.xyz")) == len(ins.atoms)
    window.export_atoms(tmp_path / "window.cif")
    wait_idle(qtbot, window)
    assert (tmp_path / "window.cif").stat().st_size > 100


def test_batch_statistics_of_a_folder(qtbot, window, image_dir, tiny_model, tmp_path):
    window.open_paths([str(image_dir)])
    assert [p.name for p in window.image_list.paths()] == ["res2_a.tif", "res2_b.tif"]
    wait_idle(qtbot, window)
    window.run_batch()
    wait_idle(qtbot, window)
    assert window.last_error is None
    assert window.batch_panel.table.rowCount() == 2
    window.export_batch(tmp_path / "gui")
    wait_idle(qtbot, window)
    assert main(["analyze", str(image_dir), "--model", str(tiny_model), "--stride", "1.0",
                 "--views", "1", "--out", str(tmp_path / "cli")]) == 0
    gui_rows = list(csv.DictReader(open(tmp_path / "gui" / "stats.csv")))
    cli_rows = list(csv.DictReader(open(tmp_path / "cli" / "stats.csv")))
    assert gui_rows == cli_rows
    assert window.batch_panel.table.item(1, 0).text() == "res2_b.tif"


def test_settings_and_recent_files_persist(qtbot, window, image_dir, tiny_model):
    from stackview.gui import settings as prefs
    from stackview.gui.main_window import MainWindow

    open_image(qtbot, window, image_dir / "res2_a.tif")
    window.spm.stride_nm.setValue(0.7)
    window.save_prefs()
    assert prefs.recent_files()[0].endswith("res2_a.tif")
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.spm.stride_nm.value() == pytest.approx(0.7)
    assert again.spm.model_choice() == str(tiny_model)
    assert again.recent_menu.actions()[0].text().endswith("res2_a.tif")


def test_auto_calibration_and_user_pixel_size(qtbot, window, image_dir):
    from stackview.analysis.lattice_reading import calibrate_by_resimulation
    from stackview.io.readers import read_image

    path = image_dir / "res2_a.tif"
    open_image(qtbot, window, path)
    window.spm.auto_button.click()
    wait_idle(qtbot, window)
    expected = calibrate_by_resimulation(read_image(path).data, "ReS2").pixel_size_nm
    assert expected == pytest.approx(0.015, rel=0.01)  # the image was simulated at 0.15 Å
    assert window.spm.pixel_size.value() == pytest.approx(expected, abs=1e-5)
    assert window.spm.pixel_size_override() == pytest.approx(expected, abs=1e-5)
    assert window.viewer.pixel_size_nm == pytest.approx(expected)
    window.spm.pixel_size.setValue(0.016)
    assert window.viewer.extent_nm() == pytest.approx((6.4, 6.4))
    assert window.spm.settings().pixel_size_nm == pytest.approx(0.016)


def test_pel_landscape_hook_and_line_profile(qtbot, window, image_dir):
    open_image(qtbot, window, image_dir / "res2_a.tif")
    window.profile.enabled.setChecked(True)
    dist, values = window.profile.curve.getData()
    assert dist[-1] == pytest.approx(0.6 * 6.0, rel=0.02) and np.all(np.isfinite(values))
    window.pel.set_cell((6.4, 0.0), (-3.1, 5.7))
    window.pel.set_landscape(np.random.default_rng(0).random((12, 12)))
    assert window.pel.has_landscape
    assert "no energy landscape" not in window.pel.widget.getPlotItem().titleLabel.text
    corner = window.pel.landscape.mapToParent(QPointF(12.5, 12.5))  # pixel centre (12, 12)
    assert (corner.x(), corner.y()) == pytest.approx((6.4 - 3.1, 5.7))
    window.pel.set_landscape(None)
    assert "no energy landscape yet" in window.pel.widget.getPlotItem().titleLabel.text


def test_mos2_slips_drawn_on_the_shipped_landscape(qtbot, window, tmp_path):
    from stackview.pel.files import load_landscape

    spec = RegressorSpec(backbone="tiny", material="MoS2")
    stem = tmp_path / "MoS2_tiny_gui"
    save_bundle(stem, build_regressor(spec, seed=0),
                ModelCard(name="MoS2_tiny_gui", spec=spec.to_dict(), sampling_A=0.2,
                          patch_px=32, orientation="random", style="clean"))
    fov = (30.0, 30.0)
    atoms = build_stack("MoS2", [(0.5, 1.0)], fov_A=fov, margin_A=10)
    img = simulate(atoms, PRESETS["MoS2-60kV"], sampling_A=0.1, fov_A=fov).image
    write_calibrated_tiff(tmp_path / "mos2.tif", img, 0.01)
    window.spm.add_model_path(str(stem))
    assert window.spm.material.currentText() == "MoS2"
    open_image(qtbot, window, tmp_path / "mos2.tif")
    result = analyse(qtbot, window)
    wait_idle(qtbot, window)  # the landscape loads in the background
    landscape = load_landscape(None, "MoS2")
    assert window.pel.has_landscape
    np.testing.assert_array_equal(window.pel.landscape.image, landscape.energy_meV.T)
    title = window.pel.widget.getPlotItem().titleLabel.text
    assert "MoS2, meV/cell, chgnet+d3" in title and "no energy landscape" not in title
    assert len(window.pel.points.data) == result.smap.n_patches
    window.export_results(tmp_path / "out")
    wait_idle(qtbot, window)
    assert window.last_error is None
    assert (tmp_path / "out" / "mos2" / "figure.png").stat().st_size > 1000


def test_gui_command_is_registered():
    from stackview.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["gui", "a.tif", "b"])
    assert args.files == ["a.tif", "b"] and args.func.__name__ == "run_gui"


def test_stackview_without_arguments_opens_the_window(qapp, monkeypatch, image_dir, capsys):
    from stackview.gui.app import EXIT_AFTER_ENV

    monkeypatch.setenv(EXIT_AFTER_ENV, "200")
    assert main([]) == 0
    assert "window shown" in capsys.readouterr().err
    assert main(["gui", str(image_dir / "res2_a.tif")]) == 0

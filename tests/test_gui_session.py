"""The window's session (pytest-qt, offscreen): the panels are views of it, it saves and
reopens exactly (File menu, ``stackview gui --session``), a moved or changed image is said in
one sentence, and the user's edits undo and redo from the Edit menu."""

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():  # the process would abort, taking the rest of the suite with it
    pytest.skip(binding_problem(), allow_module_level=True)

from PySide6.QtGui import QKeySequence  # noqa: E402
from qt_fixtures import isolated_settings  # noqa: E402, F401

JOB_MS = 30_000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from stackview.inference.regressor import RegressorSpec, build_regressor
    from stackview.models.bundle import ModelCard, save_bundle

    spec = RegressorSpec(backbone="tiny", material="ReS2")
    stem = tmp_path_factory.mktemp("models") / "ReS2_tiny_session"
    save_bundle(stem, build_regressor(spec, seed=0),
                ModelCard(name="ReS2_tiny_session", spec=spec.to_dict(), sampling_A=0.25,
                          patch_px=32, orientation="random", style="clean"))
    return stem


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from stackview.io.tiff import write_calibrated_tiff
    from stackview.materials import build_stack
    from stackview.simulation import PRESETS, simulate

    fov = (60.0, 60.0)
    img = simulate(build_stack("ReS2", [(1.0, 1.5)], fov_A=fov, margin_A=10),
                   PRESETS["ReS2-300kV"], sampling_A=0.15, fov_A=fov).image
    path = tmp_path_factory.mktemp("images") / "res2.tif"
    write_calibrated_tiff(path, img, 0.015)
    return path


def new_window(qtbot, tiny_model=None):
    from stackview.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    if tiny_model is not None:
        w.spm.add_model_path(str(tiny_model))
        w.spm.views.setValue(1)
        w.spm.stride_nm.setValue(1.0)
    return w


def idle(qtbot, w):
    qtbot.waitUntil(lambda: not w.busy(), timeout=JOB_MS)


def opened(qtbot, w, path):
    w.open_paths([str(path)])
    qtbot.waitUntil(lambda: str(path) in w.images and w.viewer.data is not None,
                    timeout=JOB_MS)
    idle(qtbot, w)


def test_panels_are_views_of_the_session_and_edits_undo(qtbot, tiny_model, image):
    w = new_window(qtbot, tiny_model)
    opened(qtbot, w, image)
    s, p = w.session, str(image)
    assert s.settings.model == str(tiny_model) and s.settings.window_nm == pytest.approx(0.8)
    assert s.settings.stride_nm == 1.0 and s.settings.n_views == 1
    assert s.pixel_size_nm(p) == pytest.approx(0.015) and not s.calibration(p).user
    assert s.images[0].path == p and len(s.images[0].sha256) == 64
    # the user's edits land in the session; the views follow
    w.spm.stride_nm.setValue(0.7)
    w.spm.pixel_size.setValue(0.016)
    assert s.settings.stride_nm == 0.7
    assert s.pixel_size_nm(p) == 0.016 and s.calibration(p).user
    assert w.viewer.extent_nm() == pytest.approx((6.4, 6.4))
    assert s.analysis_settings().pixel_size_nm == 0.016
    w.spm.model.setCurrentIndex(0)  # back to the material's default model
    assert s.settings.model is None and s.settings.window_nm != pytest.approx(0.8)
    # Edit menu, standard shortcuts
    assert w.undo_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Undo)
    assert w.redo_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Redo)
    assert w.undo_action.text() == "&Undo model choice, window"
    w.undo_action.trigger()
    assert s.settings.model == str(tiny_model) and w.spm.model_choice() == str(tiny_model)
    assert w.spm.window_nm.value() == pytest.approx(0.8)
    assert w.viewer.window_square.size().x() == pytest.approx(0.8)
    w.undo_action.trigger()  # the pixel size
    assert s.pixel_size_nm(p) == pytest.approx(0.015) and not s.calibration(p).user
    assert w.spm.pixel_size.value() == pytest.approx(0.015)
    assert w.spm.pixel_size_override() is None
    assert w.viewer.extent_nm() == pytest.approx((6.0, 6.0))
    w.undo_action.trigger()  # the stride
    assert s.settings.stride_nm == 1.0 and w.spm.stride_nm.value() == 1.0
    w.redo_action.trigger()
    assert s.settings.stride_nm == 0.7 and w.spm.stride_nm.value() == 0.7
    assert w.redo_action.text() == "&Redo pixel size"
    # the ROI: a user's drag is an edit, undone like the others
    w.spm.use_roi.setChecked(True)
    before = s.roi_nm
    w.viewer.roi.setPos((0.5, 0.5))
    assert s.roi_nm[:2] == pytest.approx((0.5, 0.5))
    w.undo()
    assert s.roi_nm == before and w.viewer.roi_nm() == pytest.approx(before)


def test_each_image_keeps_its_own_roi(qtbot, image, tmp_path):
    """An ROI dragged on one image stays with it: another image gets its own rectangle (the
    one the viewer puts on it, analysed as shown), and going back shows the first one."""
    import tifffile

    from stackview.io.tiff import write_calibrated_tiff

    data = tifffile.imread(image)
    other = tmp_path / "other.tif"
    write_calibrated_tiff(other, data, 0.03)  # a 12 nm field
    w = new_window(qtbot)
    opened(qtbot, w, image)
    s, a, b = w.session, str(image), str(other)
    w.spm.use_roi.setChecked(True)
    w.viewer.roi.setPos((0.5, 0.5))  # the user drags the ROI on the first image
    first = s.roi(a)
    assert first[:2] == pytest.approx((0.5, 0.5))
    opened(qtbot, w, other)
    assert s.current == b and s.roi(a) == first
    shown = tuple(w.viewer.roi_nm())
    assert s.roi(b) == pytest.approx(shown) and shown != pytest.approx(first)
    assert s.analysis_settings().roi_nm == pytest.approx(shown)
    assert s.analysis_settings(a).roi_nm == first
    w.viewer.roi.setPos((4.0, 4.0))
    assert s.roi(b)[:2] == pytest.approx((4.0, 4.0)) and s.roi(a) == first
    w.show_image(a)
    assert w.viewer.roi_nm() == pytest.approx(first)
    w.undo()  # the drag on the second image
    assert s.roi(b) == pytest.approx(shown) and s.roi(a) == first
    assert w.viewer.roi_nm() == pytest.approx(first)  # the image shown keeps its own


def test_session_saves_and_reopens_exactly(qtbot, tiny_model, image, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    path = work / "res2.tif"
    shutil.copy(image, path)
    w = new_window(qtbot, tiny_model)
    opened(qtbot, w, path)
    w.spm.use_roi.setChecked(True)
    w.session.set_roi((0.5, 0.5, 5.0, 5.5))
    w.spm.stride_nm.setValue(0.8)
    assert w.run_analysis() is not None
    idle(qtbot, w)
    assert w.last_error is None, w.last_error and w.last_error.text()
    w.pick_window(3.0, 3.0)
    idle(qtbot, w)
    w.spm.fit.setChecked(True)  # a setting changed after the run: saved as it is now
    folder = tmp_path / "session"
    w.save_session(folder)
    idle(qtbot, w)
    assert w.last_error is None, w.last_error and w.last_error.text()
    data = json.loads((folder / "session.json").read_text())
    assert data["settings"]["fit"] is True and data["settings"]["stride_nm"] == 0.8
    assert data["provenance"]["saved_by"] == "stackview gui"

    again = new_window(qtbot)
    again.open_session(folder)
    idle(qtbot, again)
    assert again.last_error is None, again.last_error and again.last_error.text()
    a, s = again.session, w.session
    for name in ("current", "calibrations", "settings", "rois", "inspected"):
        assert getattr(a, name) == getattr(s, name), name
    assert a.roi(str(path)) == (0.5, 0.5, 5.0, 5.5)
    assert a.images == s.images
    ours, theirs = s.results[str(path)], a.results[str(path)]
    np.testing.assert_array_equal(theirs.smap.values, ours.smap.values)
    assert theirs.summary() == ours.summary()
    # the views show the reopened session
    np.testing.assert_array_equal(again.viewer.map_values, w.viewer.map_values)
    assert again.spm.stride_nm.value() == 0.8 and again.spm.fit.isChecked()
    assert again.spm.model_choice() == str(tiny_model)
    assert again.viewer.roi_nm() == pytest.approx((0.5, 0.5, 5.0, 5.5))
    assert again.inspection is not None
    assert (again.inspection.x_nm, again.inspection.y_nm) == (w.inspection.x_nm,
                                                              w.inspection.y_nm)
    assert again.session_folder == folder and not again.undo_action.isEnabled()
    assert again.results_panel.stats.text() == w.results_panel.stats.text()

    # the image changed since: one sentence, the rest of the session still opens
    path.write_bytes(path.read_bytes()[:-16] + b"\0" * 16)
    third = new_window(qtbot)
    third.open_session(folder)
    idle(qtbot, third)
    sentence = ("res2.tif has changed since the session was saved (its checksum differs), "
                "so it and its results were left out.")
    assert third.session_problems == [sentence]
    assert third.last_error is not None and third.last_error.text() == sentence
    assert third.session.settings == s.settings and third.session.results == {}


def test_gui_command_opens_a_session(qtbot, tmp_path, monkeypatch, capsys):
    from stackview.cli import build_parser, main
    from stackview.gui.app import EXIT_AFTER_ENV
    from stackview.session import Session, Settings, save_session

    args = build_parser().parse_args(["gui", "--session", "DIR", "a.tif"])
    assert args.session == "DIR" and args.files == ["a.tif"]
    assert main(["gui", "--session", str(tmp_path / "none")]) == 2
    assert "holds no stackview session" in capsys.readouterr().err
    save_session(Session(settings=Settings(stride_nm=0.3)), tmp_path / "s")
    monkeypatch.setenv(EXIT_AFTER_ENV, "1500")
    assert main(["gui", "--session", str(tmp_path / "s")]) == 0

"""The session model without Qt: evented fields, undo/redo of the user's edits, structured
progress, and a session folder that saves and reopens exactly (checksums, moved images)."""

import json
import pickle
import sys

import numpy as np
import pytest

from stackview.engine.jobs import Progress, TextProgress, as_progress, report
from stackview.session import (
    ImageCalibration,
    Session,
    Settings,
    open_session,
    save_session,
)
from stackview.session.store import load_result


def test_no_qt_is_imported():
    import subprocess

    code = ("import sys, stackview.session, stackview.session.store, stackview.engine.jobs; "
            "print(any(m.split('.')[0] in ('PySide6', 'superqt', 'qtpy') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_edits_are_evented_and_undone_in_order():
    s = Session()
    seen = []
    s.events.settings.connect(lambda new, old: seen.append((old.stride_nm, new.stride_nm)))
    assert s.set_settings(stride_nm=0.7)
    assert not s.set_settings(stride_nm=0.7)  # no change: nothing recorded
    s.set_pixel_size("a.tif", 0.02)
    s.set_roi((1, 2, 3, 4), "a.tif")
    assert len(s.history) == 3 and s.history.undo_label() == "ROI"
    assert s.undo() == "ROI" and s.roi("a.tif") is None
    assert s.undo() == "pixel size" and s.calibration("a.tif") is None
    assert s.undo() == "stride" and s.settings.stride_nm == 0.5
    assert s.undo() is None and not s.history.can_undo
    assert seen == [(0.5, 0.7), (0.7, 0.5)]
    assert s.redo() == "stride" and s.settings.stride_nm == 0.7
    assert s.redo() == "pixel size" and s.pixel_size_nm("a.tif") == 0.02
    # a new edit drops what could have been redone
    s.set_settings(model="m", window_nm=3.2)
    assert not s.history.can_redo and s.history.undo_label() == "model choice, window"
    s.undo()
    assert (s.settings.model, s.settings.window_nm) == (None, 2.0)  # one step undoes both


def test_results_and_program_calibrations_are_not_undone():
    s = Session()
    s.set_settings(stride_nm=0.25)
    s.set_calibration("a.tif", ImageCalibration(0.015, "metadata"), undoable=False)
    s.set_result("a.tif", object())
    s.undo()
    assert s.pixel_size_nm("a.tif") == 0.015 and "a.tif" in s.results
    assert s.settings.stride_nm == 0.5


def test_analysis_settings_pass_only_the_users_pixel_size_and_an_active_roi():
    s = Session(current="a.tif")
    s.set_calibration("a.tif", ImageCalibration(0.015, "metadata"), undoable=False)
    s.set_roi((0.0, 0.0, 2.0, 2.0))
    a = s.analysis_settings()
    assert a.pixel_size_nm is None and a.roi_nm is None  # as the CLI: the file's calibration
    s.set_pixel_size("a.tif", 0.016)
    s.set_settings(use_roi=True, stride_nm=0.3)
    a = s.analysis_settings()
    assert a.pixel_size_nm == 0.016 and a.roi_nm == (0.0, 0.0, 2.0, 2.0) and a.stride_nm == 0.3
    assert s.analysis_settings(with_roi=False).roi_nm is None


def test_each_image_has_its_own_roi():
    s = Session(current="a.tif")
    s.set_settings(use_roi=True)
    s.set_roi((0.0, 0.0, 2.0, 2.0))  # the current image's
    s.set_roi((1.0, 1.0, 3.0, 4.0), "b.tif")
    assert s.rois == {"a.tif": (0.0, 0.0, 2.0, 2.0), "b.tif": (1.0, 1.0, 3.0, 4.0)}
    assert s.analysis_settings().roi_nm == (0.0, 0.0, 2.0, 2.0)
    assert s.analysis_settings("b.tif").roi_nm == (1.0, 1.0, 3.0, 4.0)
    assert s.analysis_settings("c.tif").roi_nm is None  # no ROI: the whole image
    s.current = "b.tif"
    assert s.roi_nm == (1.0, 1.0, 3.0, 4.0)
    assert not s.set_roi((1, 1, 3, 4))  # unchanged: nothing recorded
    s.set_roi((2.0, 2.0, 3.0, 3.0), "a.tif")
    assert s.undo() == "ROI"
    assert s.rois == {"a.tif": (0.0, 0.0, 2.0, 2.0), "b.tif": (1.0, 1.0, 3.0, 4.0)}
    s.set_roi(None)  # removes the current image's
    assert s.rois == {"a.tif": (0.0, 0.0, 2.0, 2.0)} and s.roi_nm is None
    n = len(s.history)
    s.set_roi((0.1, 0.2, 0.3, 0.4), "c.tif", undoable=False)  # the program's: not an edit
    assert len(s.history) == n and s.roi("c.tif") == (0.1, 0.2, 0.3, 0.4)
    with pytest.raises(ValueError, match="belongs to an image"):
        Session().set_roi((0, 0, 1, 1))


def test_progress_events_and_old_style_callbacks():
    assert as_progress(3, 10, "loss 0.25").metrics == {"loss": 0.25}
    assert as_progress(3, 10, "loss nan").metrics == {}
    assert as_progress(2, 0).fraction is None and as_progress(5, 4).fraction == 1.0
    event = Progress(1, 4, "reading", stage="lattice")
    assert as_progress(event) is event
    calls = []
    report(lambda done, total, message="": calls.append((done, total, message)), event)
    assert calls == [(1, 4, "reading")]  # a plain callable still gets positional values
    got = []
    sink = lambda e: got.append(e)  # noqa: E731
    sink.accepts_progress_events = True
    report(sink, event)
    assert got == [event]

    class Stream:
        text = ""

        def write(self, t):
            self.text += t

        def flush(self):
            pass

    bar = TextProgress("job", force=True, stream=Stream())
    bar(Progress(2, 2, "done"))
    bar(1, 1, "positional")
    assert "2/2" in bar.stream.text and "1/1" in bar.stream.text


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, tiny_bundle):
    """A small calibrated ReS2 image and its analysis with the tiny model."""
    from stackview.analysis.analyze import analyze_image
    from stackview.io.tiff import write_calibrated_tiff
    from stackview.materials import build_stack
    from stackview.simulation import PRESETS, simulate

    folder = tmp_path_factory.mktemp("images")
    fov = (40.0, 40.0)
    img = simulate(build_stack("ReS2", [(1.0, 1.5)], fov_A=fov, margin_A=10),
                   PRESETS["ReS2-300kV"], sampling_A=0.15, fov_A=fov).image
    path = folder / "a.tif"
    write_calibrated_tiff(path, img, 0.015)
    return path, analyze_image(path, model=str(tiny_bundle), stride_nm=1.0, n_views=1)


def _session(path, result):
    s = Session()
    p = str(path)
    s.add_images([p])
    s.current = p
    s.set_calibration(p, ImageCalibration.from_library(result.calibration), undoable=False)
    s.set_settings(stride_nm=1.0, n_views=1, use_roi=True)
    s.set_roi((0.5, 0.5, 3.5, 3.0))
    s.set_result(p, result)
    s.inspected = (2.0, 2.0)
    return s


def test_session_saves_and_reopens_exactly(tmp_path, analysed):
    path, result = analysed
    s = _session(path, result)
    folder = save_session(s, tmp_path / "session")
    data = json.loads((folder / "session.json").read_text())
    assert data["images"][0]["sha256"] and data["images"][0]["path"] == str(path)
    assert data["provenance"]["analyses"][str(path)]["model"] == result.bundle.card.name
    opened = open_session(folder)
    assert opened.problems == []
    o = opened.session
    for name in ("current", "calibrations", "settings", "rois", "inspected"):
        assert getattr(o, name) == getattr(s, name), name
    assert o.roi(str(path)) == (0.5, 0.5, 3.5, 3.0)
    assert [r.path for r in o.images] == [str(path)]
    again = o.results[str(path)]
    np.testing.assert_array_equal(again.smap.values, result.smap.values)
    np.testing.assert_array_equal(again.image, result.image)
    assert again.summary() == result.summary()
    assert again.bundle.card.name == result.bundle.card.name
    # saving again replaces the previous results files (none left behind)
    save_session(o, folder)
    assert len(list((folder / "results").glob("*.pkl"))) == 1


def test_moved_or_changed_images_are_left_out_with_one_sentence(tmp_path, analysed):
    path, result = analysed
    image = tmp_path / "work" / "a.tif"
    image.parent.mkdir()
    image.write_bytes(path.read_bytes())
    s = _session(image, replace_path(result, image))
    folder = save_session(s, tmp_path / "work" / "session")
    # the whole folder moved: found beside the session (relative path), checksum equal
    moved = tmp_path / "moved"
    (tmp_path / "work").rename(moved)
    opened = open_session(moved / "session")
    assert opened.problems == [] and opened.session.current == str(moved / "a.tif")
    assert opened.session.rois == {str(moved / "a.tif"): (0.5, 0.5, 3.5, 3.0)}  # follows it
    # a session saved with one ROI for all images: it becomes the image shown's
    data = json.loads((moved / "session" / "session.json").read_text())
    data["roi_nm"] = [1.0, 1.0, 2.0, 2.0]
    del data["rois"]
    (moved / "session" / "session.json").write_text(json.dumps(data))
    assert open_session(moved / "session").session.rois == {str(moved / "a.tif"):
                                                            (1.0, 1.0, 2.0, 2.0)}
    # changed
    (moved / "a.tif").write_bytes(b"II*\x00" + b"0" * 64)
    opened = open_session(moved / "session")
    assert opened.problems == ["a.tif has changed since the session was saved (its checksum "
                               "differs), so it and its results were left out."]
    assert opened.session.results == {} and opened.session.images == ()
    # gone
    (moved / "a.tif").unlink()
    (problem,) = open_session(moved / "session").problems
    assert problem.startswith("a.tif is no longer at ") and problem.count(".") >= 1
    assert folder.name == "session"


def replace_path(result, path):
    from dataclasses import replace

    return replace(result, path=path)


def test_saved_results_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        load_result(pickle.dumps(Evil()))


def test_settings_round_trip_through_dicts():
    s = Settings(material="MoS2", model="/m/x", window_nm=3.2, fit=True, use_roi=True)
    assert Settings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    c = ImageCalibration(0.01, "fft", "m", True, 0.9, ((1.0, 2.0), (3.0, 4.0)),
                         (("shear", 0.003),))
    assert ImageCalibration.from_dict(json.loads(json.dumps(c.to_dict()))) == c

"""First run: the welcome panel over the empty window opens the bundled sample and goes away;
Help → About shows the version, the licence and the NOTICE's attributions (pytest-qt,
offscreen)."""

import re
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():  # the process would abort, taking the rest of the suite with it
    pytest.skip(binding_problem(), allow_module_level=True)

from PySide6.QtCore import Qt  # noqa: E402

from stackview import __version__  # noqa: E402
from stackview.paths import RESOURCES_DIR  # noqa: E402
from qt_fixtures import isolated_settings, window  # noqa: E402, F401

SAMPLE = RESOURCES_DIR / "samples" / "ReS2_bilayer_tedgen_sample4.png"


def test_welcome_panel_is_shown_over_the_empty_window(window):
    panel = window.welcome
    assert panel.isVisible()
    assert panel.sample_button.isEnabled()
    assert "drag and drop" in panel.drop_text.text().lower()
    for name in ("TIFF", "DM3", "EMD", "SER", "MRC"):
        assert name in panel.drop_text.text()
    # centred over the viewer, inside it
    viewer = window.viewer
    assert panel.parent() is viewer
    assert 0 <= panel.x() and panel.x() + panel.width() <= viewer.width()
    assert abs((panel.x() + panel.width() / 2) - viewer.width() / 2) <= 2


def test_welcome_sample_button_opens_the_sample_and_the_panel_hides(qtbot, window):
    assert window.viewer.data is None
    qtbot.mouseClick(window.welcome.sample_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: str(SAMPLE) in window.images and window.viewer.data is not None,
                    timeout=30_000)
    qtbot.waitUntil(lambda: not window.busy(), timeout=30_000)
    assert window.last_error is None
    assert window.current_path == str(SAMPLE)
    assert window.viewer.data.shape == (1063, 1063)
    assert not window.welcome.isVisible()


def test_welcome_without_the_sample_disables_its_button(qtbot, tmp_path):
    from stackview.gui.welcome import WelcomePanel

    panel = WelcomePanel(sample=tmp_path / "missing.png")
    qtbot.addWidget(panel)
    assert not panel.sample_button.isEnabled()
    assert "missing" in panel.steps.text()


def test_about_dialog_shows_version_licence_and_notice(qtbot, window):
    dialog = window.show_about()
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    text = dialog.text.toPlainText()
    assert f"stackview {__version__}" in text
    assert "GPL-3.0-or-later" in text
    for dependency in ("PySide6", "torch", "abtem", "rosettasciio", "numpy"):
        assert dependency in text
    notice = (Path(__file__).resolve().parents[1] / "NOTICE").read_text(encoding="utf-8")
    # every bundled file the NOTICE attributes, and the licences it names, appear verbatim
    attributed = re.findall(r"^\* (\S+)", notice, flags=re.MULTILINE)
    assert len(attributed) >= 4
    for path in attributed:
        assert path in text
    for licence in ("Apache License 2.0", "CC BY 4.0", "BSD-3-Clause", "LGPL-3.0-or-later"):
        assert licence in notice and licence in text
    assert "dptech-corp/TED-Gen" in text


def test_help_menu_has_about(window):
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert "Help" in titles
    assert window.about_action.text().replace("&", "") == "About stackview"


@pytest.fixture(scope="module")
def tiny_any_orientation(tmp_path_factory):
    """An untrained 'tiny' ReS2 model that reads windows in any orientation (no frame search)."""
    from stackview.inference.regressor import RegressorSpec, build_regressor
    from stackview.models.bundle import save_bundle
    from stackview.models.card import ModelCard

    spec = RegressorSpec(backbone="tiny", material="ReS2")
    stem = tmp_path_factory.mktemp("models") / "ReS2_tiny_welcome"
    card = ModelCard(name="ReS2_tiny_welcome", spec=spec.to_dict(), sampling_A=0.25,
                     patch_px=32, orientation="random", style="clean")
    save_bundle(stem, build_regressor(spec, seed=0), card)
    return stem


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    """A small calibrated ReS2 image (6 nm at 0.015 nm/px): quicker to open than the sample."""
    from stackview.io.tiff import write_calibrated_tiff
    from stackview.materials import build_stack
    from stackview.simulation import PRESETS, simulate

    fov = (60.0, 60.0)
    atoms = build_stack("ReS2", [(1.0, 1.5)], fov_A=fov, margin_A=10)
    path = tmp_path_factory.mktemp("images") / "res2_small.tif"
    write_calibrated_tiff(path, simulate(atoms, PRESETS["ReS2-300kV"], sampling_A=0.15,
                                         fov_A=fov).image, 0.015)
    return path


@pytest.mark.parametrize("broken", ["nothing", "image", "export"])
def test_build_smoke_test_drives_the_first_run(qtbot, window, tiny_any_orientation, small_image,
                                               tmp_path, broken, capsys):
    """The frozen build's smoke test (STACKVIEW_GUI_SMOKE_TEST) passes on a working window and
    fails, with one sentence, when a step fails (a corrupt sample, an export folder that is a
    file)."""
    from stackview.gui.app import smoke_test

    window.spm.add_model_path(str(tiny_any_orientation))
    window.spm.stride_nm.setValue(1.0)
    window.welcome.sample = small_image
    if broken == "image":
        window.welcome.sample = tmp_path / "corrupt.png"
        window.welcome.sample.write_bytes(b"not a png")
    out = tmp_path / "out"
    if broken == "export":
        out.write_text("a file where the export folder should be")
    codes = []
    smoke_test(window, str(out), exit=codes.append)
    qtbot.waitUntil(lambda: bool(codes), timeout=60_000)
    err = capsys.readouterr().err
    if broken == "nothing":
        assert codes == [0], err
        assert "smoke test passed" in err
        assert (out / small_image.stem / "summary.json").is_file()
    else:
        assert codes == [1]
        assert "smoke test failed" in err and "Traceback" not in err

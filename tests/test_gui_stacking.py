"""Stacking families in the window (offscreen, pytest-qt), on results built by hand: a family
model's map shows its stacking classes as a categorical layer (one flat colour per class, a
legend with the counts instead of the colour bar), selected by default, with the family
probability still a continuous layer; the read-out and the window inspector give a window's
family, class and distance; the summary counts families and classes; the PEL pane shows the
majority family's landscape with that family's windows only. A ReS2 (one-family) result is
shown as before."""

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():
    pytest.skip(binding_problem(), allow_module_level=True)

from PySide6.QtGui import QTextDocument  # noqa: E402
from qt_fixtures import isolated_settings, window  # noqa: E402, F401
from trust_fakes import make_result, make_smap  # noqa: E402

from stackview.analysis.export import CLASS_COLOURS  # noqa: E402
from stackview.analysis.fields import label_statistics, stacking_columns  # noqa: E402
from stackview.core.labels import SlipLabels  # noqa: E402
from stackview.core.stacking import chamber_frac  # noqa: E402
from stackview.materials import get_material  # noqa: E402
from stackview.models.bundle import load_bundle  # noqa: E402
from stackview.pel.files import load_landscape  # noqa: E402

JOB_TIMEOUT_MS = 30_000
MOS2 = get_material("MoS2")
CELL = np.array([MOS2.a_A, MOS2.b_A])
DELTA = np.array([1 / 3, 2 / 3]) * CELL
MINUS_DELTA = np.array([2 / 3, 1 / 3]) * CELL
CENTROID = np.array([1 / 3, 1 / 3]) * CELL  # ~1.06 Å from every antiparallel class
#: (row, column) of one window of each class (and one not read) on the 5 × 6 grid
CELLS = {"AA": (0, 0), "AB/BA": (1, 1), "AA'": (0, 5), "AB'": (1, 2), "A'B": (2, 3),
         "intermediate": (3, 4), "": (4, 0)}


@pytest.fixture(scope="module")
def family_bundle(tmp_path_factory):
    """An untrained MoS2 bundle that reads both families (tiny backbone, invariant head)."""
    from stackview.inference.regressor import RegressorSpec, build_regressor
    from stackview.models.bundle import save_bundle
    from stackview.models.card import ModelCard

    spec = RegressorSpec(backbone="tiny", material="MoS2", family="both", head="invariant")
    stem = tmp_path_factory.mktemp("models") / "MoS2_family_tiny"
    card = ModelCard(name="MoS2_family_tiny", spec=spec.to_dict(), sampling_A=0.25,
                     patch_px=32, orientation="aligned", style="clean")
    save_bundle(stem, build_regressor(spec, seed=0), card)
    bundle = load_bundle(stem)
    assert bundle.card.spec["family"] == "both"
    return bundle


@pytest.fixture(scope="module")
def res2_bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def family_result(bundle, name="mos2.tif", majority="antiparallel"):
    """Columns 0–1 parallel (AB/BA, one AA, one window not read), 2–5 antiparallel (AA′, one
    AB′, one A′B, one intermediate); ``majority="parallel"`` makes columns 0–4 parallel."""
    smap = make_smap(values=(0.0, 0.0, 0.0), names=("Da_A", "Db_A", "family"))
    v = smap.values
    split = 2 if majority == "antiparallel" else 5
    v[:, :split, :2] = DELTA
    v[:, :split, 2] = 0.1
    v[:, split:, :2] = DELTA
    v[:, split:, 2] = 0.93
    v[CELLS["AA"]][:2] = 0.0
    if majority == "antiparallel":
        v[CELLS["AB'"]][:2] = 0.0
        v[CELLS["A'B"]][:2] = MINUS_DELTA
        v[CELLS["intermediate"]][:2] = CENTROID
    v[CELLS[""]] = np.nan
    smap.points[:, 2:5] = v.reshape(-1, 3)
    space = SlipLabels("MoS2", family="both")
    smap.stacking = stacking_columns(smap, space)
    result = make_result(bundle, name)
    result.smap = smap
    result.statistics = label_statistics(v.reshape(-1, 3), smap.names, space)
    return result


def show(w, result):
    """Show a hand-made result as if the analysis of its image had just returned."""
    w.current_path = str(result.path)
    w.viewer.set_image(result.image, result.calibration.pixel_size_nm)
    w.results[w.current_path] = result
    w.show_result(result)


def wait_idle(qtbot, w):
    qtbot.waitUntil(lambda: not w.busy(), timeout=JOB_TIMEOUT_MS)


def plain(html: str) -> str:
    doc = QTextDocument()
    doc.setHtml(html)
    return doc.toPlainText().replace("\xa0", " ")


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[k:k + 2], 16) for k in (1, 3, 5))


def test_stacking_class_layer_is_the_default_with_flat_colours_and_a_legend(qtbot, window,
                                                                           family_bundle):
    result = family_result(family_bundle)
    st = result.smap.stacking
    for name, cell in CELLS.items():  # the hand-made map holds every class
        assert st.grid[cell] == name
    show(window, result)
    panel, viewer = window.results_panel, window.viewer
    layers = [panel.layer.itemText(k) for k in range(panel.layer.count())]
    assert layers == ["stacking class", "Da_A", "Db_A", "family", "uncertainty"]
    assert panel.layer.currentText() == "stacking class"
    # one flat, opaque colour per class (the figure's), nothing where no window was read
    image = viewer.class_item.image
    assert image.shape == (5, 6, 4) and viewer.class_item.isVisible()
    for name, cell in CELLS.items():
        if name:
            assert tuple(image[cell][:3]) == rgb(CLASS_COLOURS[name]), name
            assert image[cell][3] == 255
        else:
            assert image[cell][3] == 0
    same = st.grid == "AA'"
    assert np.all(image[same][:, :3] == rgb(CLASS_COLOURS["AA'"]))
    # a legend of the classes present with their counts instead of the colour bar
    assert not viewer.colorbar.isVisible() and not viewer.map_item.isVisible()
    assert viewer.legend.isVisible()
    assert plain(viewer.legend.text()) == ("stacking class: ■ AA′ 17 · ■ AB/BA 8 · ■ AA 1 · "
                                           "■ AB′ 1 · ■ A′B 1 · ■ intermediate 1")
    assert viewer.class_item.opacity() == pytest.approx(panel.opacity.value() / 100)
    panel.opacity.setValue(30)
    assert viewer.class_item.opacity() == pytest.approx(0.3)
    panel.show_map.setChecked(False)
    assert not viewer.class_item.isVisible() and not viewer.legend.isVisible()
    panel.show_map.setChecked(True)
    assert viewer.class_item.isVisible() and viewer.legend.isVisible()
    # the family probability stays a continuous layer, on a fixed 0-1 scale
    panel.layer.setCurrentText("family")
    np.testing.assert_array_equal(viewer.map_values, result.smap.values[..., 2])
    assert tuple(viewer.colorbar.levels()) == (0.0, 1.0)
    assert viewer.colorbar.isVisible() and viewer.map_item.isVisible()
    assert not viewer.class_item.isVisible() and not viewer.legend.isVisible()
    panel.layer.setCurrentText("stacking class")
    assert viewer.class_item.isVisible() and not viewer.colorbar.isVisible()


def test_read_out_summary_and_inspector_give_family_class_and_distance(qtbot, window,
                                                                       family_bundle):
    result = family_result(family_bundle)
    show(window, result)
    viewer = window.viewer
    # the window at (2.5, 1.5) nm is AB′, the one at (4.5, 3.5) nm intermediate
    assert viewer.readout_text(2.5, 1.5).endswith(
        " · stacking AB′ (antiparallel family), 0.00 Å from AB′")
    far = float(np.linalg.norm(CENTROID[0] * MOS2.a_vec_A / MOS2.a_A
                               + CENTROID[1] * MOS2.b_vec_A / MOS2.b_A))
    assert viewer.readout_text(4.5, 3.5).endswith(
        f" · stacking intermediate (antiparallel family), {far:.2f} Å from the nearest class")
    assert viewer.readout_text(1.5, 1.5).endswith(
        " · stacking AB/BA (parallel family), 0.00 Å from AB/BA")
    assert "stacking" not in viewer.readout_text(0.5, 4.5)  # not read
    window.results_panel.layer.setCurrentText("family")  # the words go with every layer
    assert viewer.readout_text(3.5, 2.5).endswith(
        " · family 0.930 · stacking A′B (antiparallel family), 0.00 Å from A′B")
    # the summary: windows per family and per class, the other family's medians
    lines = window.results_panel.stats.text().splitlines()
    assert ("stacking families: parallel 9, antiparallel 20 windows (the slip medians are of "
            "the antiparallel ones)") in lines
    assert "stacking classes: AA′ 17 · AB/BA 8 · AA 1 · AB′ 1 · A′B 1 · intermediate 1" in lines
    other = [line for line in lines if line.startswith("parallel windows: ")]
    stats = result.statistics["per_family"]["parallel"]
    assert other == [f"parallel windows: Da_A median {stats['Da_A']['median']:.3f}, IQR "
                     f"{stats['Da_A']['iqr']:.3f}; Db_A median {stats['Db_A']['median']:.3f}, "
                     f"IQR {stats['Db_A']['iqr']:.3f}"]
    wait_idle(qtbot, window)
    # the inspector: at the click, and with the re-simulation
    job = window.pick_window(2.4, 1.6)
    assert job is not None
    assert window.inspector.info.text() == (
        "Window at (2.50, 1.50) nm: stacking AB′ (antiparallel family), 0.00 Å from AB′; "
        "no re-simulation NCC in the analysis; re-simulating it…")
    wait_idle(qtbot, window)
    assert window.last_error is None, window.last_error and window.last_error.text()
    assert window.inspection.stacking == "stacking AB′ (antiparallel family), 0.00 Å from AB′"
    assert window.inspector.info.text().startswith(
        "Window at (2.50, 1.50) nm: Da_A 0.000, Db_A 0.000, family 0.930; stacking AB′ "
        "(antiparallel family), 0.00 Å from AB′; NCC with the re-simulation ")


@pytest.mark.parametrize("majority", ["antiparallel", "parallel"])
def test_pel_pane_shows_the_majority_familys_landscape_and_windows(qtbot, window,
                                                                   family_bundle, majority):
    result = family_result(family_bundle, majority=majority)
    assert result.statistics["majority_family"] == majority
    show(window, result)
    wait_idle(qtbot, window)
    assert window.last_error is None, window.last_error and window.last_error.text()
    pel = window.pel
    expected = load_landscape("MoS2", family=majority).energy_meV
    other = load_landscape("MoS2", family="parallel" if majority == "antiparallel"
                           else "antiparallel").energy_meV
    np.testing.assert_array_equal(pel.landscape.image, expected.T)
    assert not np.allclose(pel.landscape.image, other.T)
    words = {"antiparallel": "antiparallel (2H) family", "parallel": "parallel (3R) family"}
    assert f"(MoS2 {words[majority]}, meV/cell" in pel.widget.getPlotItem().titleLabel.text
    # only that family's windows, as points on the cell
    keep = result.smap.stacking.family == majority
    pts = result.smap.points[keep]
    x, y = pel.points.getData()
    np.testing.assert_allclose(np.column_stack([x, y]), pel.slips_to_xy(pts[:, 2], pts[:, 3]))
    assert len(x) == (20 if majority == "antiparallel" else 24)
    read = 29
    assert f"the {len(x)} windows of the {words[majority]} (the map's majority) of {read} " \
           "read" in pel.notes.text()
    # the family's canonical triangle shaded, its classes named
    poly = pel.domain.polygon()
    frac = chamber_frac(MOS2, majority)
    corners = np.outer(frac[:, 0], MOS2.a_vec_A[:2]) + np.outer(frac[:, 1], MOS2.b_vec_A[:2])
    np.testing.assert_allclose([[poly[k].x(), poly[k].y()] for k in range(poly.size())],
                               corners, atol=1e-9)
    labels = {item.textItem.toPlainText() for item in pel.mark_labels}
    assert labels == ({"AA′", "AB′", "A′B"} if majority == "antiparallel" else {"AA", "AB/BA"})


def test_a_one_family_result_is_shown_as_before(qtbot, window, family_bundle, res2_bundle):
    show(window, family_result(family_bundle))  # first a family map, then ReS2
    wait_idle(qtbot, window)
    result = make_result(res2_bundle, "res2.tif")
    show(window, result)
    wait_idle(qtbot, window)
    panel, viewer, pel = window.results_panel, window.viewer, window.pel
    layers = [panel.layer.itemText(k) for k in range(panel.layer.count())]
    assert layers == ["Da_A", "Db_A", "uncertainty"]
    assert panel.layer.currentText() == "Da_A"
    np.testing.assert_array_equal(viewer.map_values, result.smap.values[..., 0])
    assert viewer.colorbar.isVisible() and not viewer.legend.isVisible()
    assert not viewer.class_item.isVisible() and viewer.class_grid is None
    assert viewer.readout_text(2.5, 1.5).endswith(" · Da_A 1.000")
    assert "stacking" not in panel.stats.text()
    # the PEL: the ReS2 landscape, no family named, no marks, the old domain
    np.testing.assert_array_equal(pel.landscape.image,
                                  load_landscape("ReS2").energy_meV.T)
    title = pel.widget.getPlotItem().titleLabel.text
    assert "(ReS2, meV/cell" in title and "family" not in title
    assert pel.mark_labels == [] and len(pel.marks.getData()[0]) == 0
    assert "windows of the" not in pel.notes.text()
    a, b = (np.asarray(v, float)[:2] for v in (get_material("ReS2").a_vec_A,
                                               get_material("ReS2").b_vec_A))
    poly = pel.domain.polygon()
    np.testing.assert_allclose([[poly[k].x(), poly[k].y()] for k in range(poly.size())],
                               [[0, 0], a, a + b / 2, b / 2], atol=1e-9)
    assert len(pel.points.getData()[0]) == 30
    # and back to a family map: the stacking classes are shown again
    show(window, family_result(family_bundle, "mos2b.tif"))
    assert panel.layer.currentText() == "stacking class" and viewer.legend.isVisible()
    wait_idle(qtbot, window)

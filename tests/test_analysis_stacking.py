"""Stacking classes in the analysis outputs (no network): a map that reads a 3R domain beside
a 2H one gets its family, class and distance per window in map.csv, counts in the statistics,
a categorical panel in the figure and an interface along the family boundary."""

import csv

import numpy as np
import pytest
from trust_fakes import make_smap

from stackview.analysis.export import build_figure, write_map_csv
from stackview.analysis.fields import interface_polyline, label_statistics, stacking_columns
from stackview.core.labels import SlipLabels
from stackview.materials import get_material

MOS2 = get_material("MoS2")
DELTA = np.array([1 / 3, 2 / 3]) * np.array([MOS2.a_A, MOS2.b_A])


def _two_domains(nx=10, ny=6, boundary=5):
    """Columns < ``boundary`` read AB (parallel, δ), the rest AA′ (antiparallel, δ) with a
    family probability; one window is off every class."""
    smap = make_smap(values=(0.0, 0.0, 0.0), nx=nx, ny=ny, stride_nm=0.2, window_nm=1.0,
                     names=("Da_A", "Db_A", "family"))
    vals = smap.values
    vals[:, :, :2] = DELTA
    vals[:, :boundary, 2] = 0.1
    vals[:, boundary:, 2] = 0.93
    vals[0, 0, :2] = (0.9, 0.75)  # SP-like: far from every parallel class
    smap.points[:, 2:5] = vals.reshape(-1, 3)
    return smap


def test_stacking_columns_statistics_and_csv(tmp_path):
    space = SlipLabels(MOS2, family="both")
    smap = _two_domains()
    st = stacking_columns(smap, space)
    assert st.grid.shape == (6, 10)
    assert set(st.grid[:, 5:].ravel()) == {"AA'"}
    assert set(st.grid[1:, :5].ravel()) == {"AB/BA"} and st.grid[0, 0] == "intermediate"
    stats = label_statistics(smap.values.reshape(-1, 3), smap.names, space)
    assert stats["families"] == {"parallel": 30, "antiparallel": 30}
    assert stats["stacking"] == {"AA'": 30, "AB/BA": 29, "intermediate": 1}
    assert stats["per_family"]["antiparallel"]["Da_A"]["median"] == pytest.approx(DELTA[0], abs=1e-6)
    smap.stacking = st
    write_map_csv(tmp_path / "map.csv", smap)
    rows = list(csv.DictReader(open(tmp_path / "map.csv", encoding="utf-8")))
    assert rows[0]["stacking"] == "intermediate" and rows[0]["stacking_family"] == "parallel"
    assert float(rows[0]["stacking_distance_A"]) > 0.5
    assert rows[1]["stacking"] == "AB/BA" and float(rows[1]["stacking_distance_A"]) < 1e-6
    assert rows[9]["stacking"] == "AA'" and rows[9]["stacking_family"] == "antiparallel"
    assert rows[9]["family"] == "0.9300"


def test_the_family_boundary_is_the_interface_and_the_figure_shows_classes():
    space = SlipLabels(MOS2, family="both")
    smap = _two_domains()
    smap.values[0, 0, :2] = DELTA  # no stray window
    line = interface_polyline(smap, space)
    assert len(line) >= 2
    # between the last parallel column (x = 1.3 nm) and the first antiparallel one (1.5 nm)
    assert np.all(np.abs(line[:, 0] - 1.4) <= 0.1 + 1e-9)
    smap.stacking = stacking_columns(smap, space)
    fig = build_figure(np.random.default_rng(0).normal(size=(200, 300)), 0.01, smap,
                       interface=line)
    panels = [ax for ax in fig.axes if ax.get_title() == "stacking class"]
    assert len(panels) == 1
    legend = [t.get_text() for t in panels[0].get_legend().get_texts()]
    assert legend == ["AB/BA", "AA\u2032"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_pel_overlay_takes_the_majority_familys_windows_and_landscape():
    from types import SimpleNamespace

    from stackview.pel.figure import result_family, slips_from_result

    space = SlipLabels(MOS2, family="both")
    smap = _two_domains(boundary=4)  # 24 parallel windows, 36 antiparallel
    stats = label_statistics(smap.values.reshape(-1, 3), smap.names, space)
    result = SimpleNamespace(smap=smap, statistics=stats)
    assert result_family(result) == "antiparallel"
    slips = slips_from_result(result)
    assert len(slips) == 36
    np.testing.assert_allclose(slips, np.broadcast_to(DELTA, (36, 2)))
    plain = SimpleNamespace(smap=make_smap(), statistics={})
    assert result_family(plain) is None and len(slips_from_result(plain)) == 30


def test_slip_deviations_stay_within_the_reference_family():
    """Δd is measured from the reference region's family; the other family's windows get none
    (a slip difference across a 3R/2H boundary is no displacement of one stacking)."""
    from stackview.analysis.fields import slip_vector_field

    space = SlipLabels(MOS2, family="both")
    smap = _two_domains()
    smap.values[0, 0, :2] = DELTA
    smap.values[1, 2, :2] = DELTA + (0.05, 0.0)  # a parallel window slipped by 0.05 Å along a
    # the default reference region (lower-right quarter) is antiparallel
    field = slip_vector_field(smap, space)
    assert field.family == "antiparallel"
    assert np.all(np.isnan(field.magnitude_A[:, :5])) and np.all(field.magnitude_A[:, 5:] < 1e-6)
    # a reference region in the parallel domain: that family's deviations, the other's none
    field = slip_vector_field(smap, space, reference_roi_nm=(0.0, 0.0, 0.7, 1.0))
    assert field.family == "parallel"
    assert np.all(np.isnan(field.magnitude_A[:, 5:]))
    assert field.magnitude_A[1, 2] == pytest.approx(0.05, abs=1e-6)
    assert np.nanmax(np.delete(field.magnitude_A[:, :5].ravel(), 1 * 5 + 2)) < 1e-6

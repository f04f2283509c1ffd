"""Twist maps in the window: a bound near alignment is shown, not a guessed angle, in the
results panel and in the inspector of a clicked window (offscreen, pytest-qt)."""

import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():
    pytest.skip(binding_problem(), allow_module_level=True)

from qt_fixtures import isolated_settings, window  # noqa: E402, F401
from test_analysis_twist_maps import twisted_image  # noqa: E402

from stackview.analysis.analyze import analyze_image  # noqa: E402


def test_bound_in_results_panel_and_inspector(qtbot, window, tmp_path):
    result = analyze_image(twisted_image(0.4, 5.0), material="MoS2", task="twist", pixel_size_nm=0.025,
                           stride_nm=1.0, n_views=1)
    result.path = tmp_path / "aligned.tif"
    bounds = result.smap.bounds
    assert bounds.below >= 0.9 * len(bounds.side_points)
    w = window
    w.current_path = str(result.path)
    w.viewer.set_image(result.image, result.calibration.pixel_size_nm)
    w.results[w.current_path] = result
    w.show_result(result)
    assert f"θ < {bounds.low_deg:.1f}° in {bounds.below} of" in w.results_panel.stats.text()
    # a median of angles only over the windows that read one: here none does, so none shown
    # (a twisted image below shows one)
    assert bounds.resolved == 0 and "theta_deg: median" not in w.results_panel.stats.text()
    x, y = result.smap.points[0, :2]
    job = w.pick_window(float(x), float(y))
    assert job is not None
    qtbot.waitUntil(lambda: not w.busy(), timeout=30_000)
    assert w.last_error is None, w.last_error and w.last_error.text()
    assert w.inspection.bound == f"<{bounds.low_deg:.1f}"
    assert f"θ < {bounds.low_deg:.1f}° (a bound" in w.inspector.info.text()


def test_a_twisted_image_shows_the_median_angle(qtbot, window, tmp_path):
    """6°, well above the bound: every window reads an angle, the panel gives their median
    and no bound."""
    import numpy as np

    result = analyze_image(twisted_image(6.0, 5.0), material="MoS2", task="twist", pixel_size_nm=0.025,
                           stride_nm=1.0, n_views=1)
    result.path = tmp_path / "twisted.tif"
    bounds = result.smap.bounds
    assert bounds.resolved == len(bounds.side_points) > 0 and bounds.below == 0
    w = window
    w.current_path = str(result.path)
    w.viewer.set_image(result.image, result.calibration.pixel_size_nm)
    w.results[w.current_path] = result
    w.show_result(result)
    text = w.results_panel.stats.text()
    median = result.summary()["theta_deg_median"]
    theta = result.smap.values[..., list(result.smap.names).index("theta_deg")]
    assert median == pytest.approx(float(np.nanmedian(theta)))
    assert f"theta_deg: median {median:.3f}" in text and "θ <" not in text

"""The window's Fit toggle: the SPM panel asks for the physics fit, the results panel shows it."""

import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():  # the process would abort, taking the rest of the suite with it
    pytest.skip(binding_problem(), allow_module_level=True)


def test_fit_toggle_reaches_analyze_image(qtbot, monkeypatch):
    import stackview.analysis.analyze as analyze
    from stackview.gui import tasks
    from stackview.gui.spm_panel import SpmPanel

    panel = SpmPanel()
    qtbot.addWidget(panel)
    assert panel.settings().fit is False
    panel.fit.setChecked(True)
    settings = panel.settings()
    assert settings.fit is True
    seen = {}
    from types import SimpleNamespace

    import torch

    model = SimpleNamespace(model=torch.nn.Linear(1, 1))  # a stand-in with a device
    monkeypatch.setattr(tasks, "load_model", lambda *a, **k: model)
    monkeypatch.setattr(analyze, "analyze_image", lambda *a, **k: seen.update(k))
    tasks.run_analysis("image.tif", settings)
    assert seen["fit"] is True


def test_results_panel_shows_the_fit(qtbot):
    from stackview.gui.results_panel import ResultsPanel

    panel = ResultsPanel()
    qtbot.addWidget(panel)
    summary = {"reliable": True, "n_patches": 16, "seconds": 9.0, "patches_per_second": 1.8,
               "pixel_size_nm": 0.0038, "calibration_source": "fft", "window_nm": 2.05,
               "stride_nm": 0.5, "mode": "window", "Da_A_median": 0.8, "Da_A_iqr": 0.02,
               "fit": {"n_windows": 16, "n_fitted": 16, "Da_A_median": 0.8048,
                       "sigma_Da_A_median": 0.0136, "ncc_median": 0.91,
                       "chi2_red_median": 2.79, "moved_more_than_sigma": 6}}
    panel.show_summary(summary, ("Da_A",))
    text = panel.stats.text()
    assert "fit Da_A: median 0.805, σ 0.014" in text
    assert "6 of 16 windows moved by more than their σ" in text

"""Twist readings a window cannot resolve become bounds; the model is chosen by window."""

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest

from stackview.analysis.export import write_map_csv
from stackview.analysis.twist_bounds import (
    PERIODS_PER_WINDOW,
    apply_twist_bounds,
    resolvable_limit_deg,
)
from stackview.errors import UsageError
from stackview.core.labels import TwistLabels
from stackview.inference.spm import SpmMap
from stackview.materials.builders import moire_period_A
from stackview.models.registry import choose_window


def test_limit_is_the_angle_whose_moire_period_fills_the_windows():
    limit = resolvable_limit_deg(3.18, 2.5)
    assert moire_period_A("MoS2", limit) == pytest.approx(PERIODS_PER_WINDOW * 25.0, rel=1e-3)
    assert 2.5 < limit < 3.5
    # a larger window resolves angles nearer alignment
    assert resolvable_limit_deg(3.18, 6.4) < limit / 2


def _twist_map(thetas, window_nm=2.5):
    t = np.asarray(thetas, dtype=float)
    values = t.reshape(1, -1, 1)
    x = np.arange(len(t), dtype=float)
    points = np.column_stack([x, np.zeros_like(x), t, np.full_like(x, 0.1), np.zeros_like(x)])
    return SpmMap(x, np.zeros(1), values.copy(), np.full((1, len(t)), 0.1), ("theta_deg",),
                  window_nm, 1.0, "window", points)


def test_bounds_replace_the_readings_near_both_alignments(tmp_path):
    smap = _twist_map([0.4, 2.0, 10.0, 31.0, 58.5, 59.9])
    space = TwistLabels("MoS2")
    bounds = apply_twist_bounds(smap, space)
    assert bounds.side_points.tolist() == [-1, -1, 0, 0, 1, 1]
    assert (bounds.below, bounds.above, bounds.resolved) == (2, 2, 2)
    assert np.isnan(smap.values[0, [0, 1, 4, 5], 0]).all()
    assert smap.values[0, 2, 0] == 10.0 and smap.values[0, 3, 0] == 31.0
    assert bounds.high_deg == pytest.approx(60.0 - bounds.limit_deg)
    text = bounds.text()
    assert f"θ < {bounds.low_deg:.1f}° in 2 of 6 windows" in text
    assert f"θ > {bounds.high_deg:.1f}° in 2 of 6 windows" in text
    assert bounds.to_dict()["below"] == 2
    rows = list(csv.DictReader(open(write_map_csv(tmp_path / "map.csv", smap))))
    assert [r["theta_bound"] for r in rows] == [f"<{bounds.low_deg:.1f}"] * 2 + ["", ""] + \
        [f">{bounds.high_deg:.1f}"] * 2
    assert rows[0]["theta_deg"] == "" and float(rows[2]["theta_deg"]) == 10.0


def test_a_larger_window_reads_what_a_small_one_bounds():
    space = TwistLabels("MoS2")
    small = apply_twist_bounds(_twist_map([2.0], 2.5), space)
    large = apply_twist_bounds(_twist_map([2.0], 6.4), space)
    assert small.below == 1 and large.below == 0 and large.text() == ""


def _entry(window_nm):
    card = SimpleNamespace(patch_nm=window_nm, material="MoS2", task="twist")
    return SimpleNamespace(name=f"m{window_nm}", card=card)


def test_model_chosen_by_field_and_window():
    family = [_entry(6.4), _entry(2.5)]  # largest window first, as preferred_model sorts
    assert choose_window(family).card.patch_nm == 6.4
    assert choose_window(family, field_nm=2.85).card.patch_nm == 2.5   # the paper's image
    assert choose_window(family, field_nm=12.0).card.patch_nm == 2.5   # 6.4 nm fits once
    assert choose_window(family, field_nm=25.0).card.patch_nm == 6.4   # room for a map
    assert choose_window(family, field_nm=1.5).card.patch_nm == 2.5   # smallest: refused later
    assert choose_window(family, window_nm=2.5).card.patch_nm == 2.5
    with pytest.raises(UsageError, match="windows: 6.40, 2.50 nm"):
        choose_window(family, window_nm=4.0)
    assert math.isclose(choose_window(family, field_nm=19.2).card.patch_nm, 6.4)


class _Sampler:
    def extract(self, centres_px):
        return np.zeros((len(centres_px), 8, 8))


class _Resim:
    """Parallel layers fit every window better than antiparallel ones."""

    task = "twist"

    def __init__(self):
        self.calls = 0

    def ncc(self, window, theta):
        self.calls += 1
        return 0.9 if theta < 30 else 0.5


def test_sides_are_decided_by_resimulation_with_progress_and_cancel():
    from stackview.analysis.twist_bounds import decide_sides
    from stackview.engine.jobs import CancelToken
    from stackview.errors import Cancelled

    space = TwistLabels("MoS2")
    smap = _twist_map([59.5, 58.9, 30.0])  # the network read the antiparallel end
    bounds = apply_twist_bounds(smap, space)
    seen = []
    resim = _Resim()
    decide_sides(bounds, smap, _Sampler(), 0.025, resim,
                 progress=lambda done, total, text: seen.append((done, total)))
    assert bounds.side_points.tolist() == [-1, -1, 0]
    assert bounds.flipped_by_resimulation == 2 and resim.calls == 4
    assert seen == [(0, 2), (1, 2)]
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        decide_sides(apply_twist_bounds(_twist_map([59.5]), space), _twist_map([59.5]),
                     _Sampler(), 0.025, _Resim(), cancel)

"""Models that read context, and dense maps that equal window maps (issue 19)."""

import numpy as np
import pytest
import torch

from stackview.errors import UsageError
from stackview.inference.dense import dense_map, dense_step_px, resolve_mode, supports_dense
from stackview.inference.regressor import RegressorSpec, build_regressor
from stackview.inference.spm import WindowSampler, spm_map
from stackview.models.bundle import Bundle
from stackview.models.card import ModelCard

WINDOW, MARGIN = 32, 8  # the tiny backbone's trunk stride is 8 px


def _bundle(context=MARGIN, gain=10.0, head="direct", window=WINDOW):
    spec = RegressorSpec(backbone="tiny", material="ReS2", head=head, context_px=context,
                         window_px=window if context else 0)
    model = build_regressor(spec, seed=0).eval()
    with torch.no_grad():  # an untrained net barely varies: make its readings spread
        model.head[-1].weight *= gain
    card = ModelCard(name="tiny_ctx", spec=spec.to_dict(), sampling_A=0.25, patch_px=window,
                     orientation="aligned")
    return Bundle(model=model, card=card)


def _lattice(shape=(200, 220), shift_right=1.5):
    """A three-wave lattice whose right half is moved by ``shift_right`` px: two 'domains' the
    model reads differently, with the same intensity statistics."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    x = xx - np.where(xx > shape[1] / 2, shift_right, 0.0)
    img = np.cos(0.9 * x) + np.cos(0.45 * x + 0.78 * yy) + np.cos(-0.45 * x + 0.78 * yy)
    return img.astype(np.float32)


def test_a_context_model_reads_the_window_and_sees_its_margin():
    bundle = _bundle()
    model = bundle.model
    assert bundle.card.input_px == WINDOW + 2 * MARGIN
    rng = np.random.default_rng(1)
    tile = torch.from_numpy(rng.random((1, 1, 48, 48)).astype(np.float32))
    base = model(tile)
    edited = tile.clone()
    edited[..., 0:4, 0:4] += 5.0  # in the margin: seen through the receptive field
    assert not torch.allclose(model(edited), base)
    # a larger input is read at its centre: the same window with more context around it
    bigger = torch.nn.functional.pad(tile, (8, 8, 8, 8), mode="reflect")
    assert model(bigger).shape == base.shape
    with pytest.raises(UsageError, match="context"):
        model(tile[..., 8:40, 8:40])  # the window alone


def test_context_settings_are_checked():
    with pytest.raises(UsageError, match="window size"):
        RegressorSpec(backbone="tiny", context_px=8)
    with pytest.raises(UsageError, match="multiples"):
        build_regressor(RegressorSpec(backbone="tiny", context_px=4, window_px=32))


def test_the_sampler_cuts_windows_and_tiles_on_the_same_centre():
    img = _lattice()
    sampler = WindowSampler.for_model(img, 0.025, _bundle().card)
    c = np.array([[110.0, 100.0], [3.0, 4.0]])  # the second near a corner: padded tiles
    windows, tiles = sampler.extract(c), sampler.extract(c, context=True)
    assert windows.shape == (2, WINDOW, WINDOW) and tiles.shape == (2, 48, 48)
    np.testing.assert_array_equal(tiles[:, MARGIN:-MARGIN, MARGIN:-MARGIN], windows)


@pytest.mark.parametrize("views", [1, 3])
def test_dense_map_equals_window_map_on_the_nodes(views):
    """The CI check of issue 19: without a frame the dense windows fall on the window mode's
    and the two maps agree within 0.02 Å, on a map that varies by far more."""
    bundle = _bundle()
    img = _lattice()
    dense = dense_map(img, 0.025, bundle, stride_nm=0.1, n_views=views)
    assert dense.extra["node_step_px"] == 4 and dense.extra["trunk_passes"] == 4 * views
    window = spm_map(img, 0.025, bundle, stride_nm=dense.stride_nm, n_views=views)
    np.testing.assert_allclose(dense.x_nm, window.x_nm)
    np.testing.assert_allclose(dense.y_nm, window.y_nm)
    space = bundle.label_space
    diff = space.distance(dense.values.reshape(-1, 2), window.values.reshape(-1, 2))
    spread = np.ptp(window.values.reshape(-1, 2), axis=0).max()
    assert spread > 0.15, spread  # ten times the tolerance
    assert diff.max() < 0.02, diff.max()
    if views > 1:  # the shifted passes give an uncertainty as the window mode's views do
        assert np.all(dense.uncertainty > 0)
        assert np.median(np.abs(dense.uncertainty - window.uncertainty)) < 0.01


def test_dense_tiles_join_without_seams(monkeypatch):
    """Small tiles (a large image is processed tile by tile) give the map one tile gives."""
    import stackview.inference.dense as dense_mod

    bundle = _bundle()
    img = _lattice()
    whole = dense_map(img, 0.025, bundle, stride_nm=0.1)
    monkeypatch.setattr(dense_mod, "TILE_PX", 40)
    tiled = dense_map(img, 0.025, bundle, stride_nm=0.1)
    np.testing.assert_allclose(tiled.values, whole.values, atol=1e-4)


def test_dense_map_follows_a_rotated_frame():
    from stackview.core.frame import Frame

    bundle = _bundle()
    img = _lattice()
    ang = np.radians(20.0)
    frame = Frame(20.0, False, (np.cos(ang), np.sin(ang)), (-np.sin(ang), np.cos(ang)), 0.0)
    dense = dense_map(img, 0.025, bundle, stride_nm=0.1, frame=frame)
    window = spm_map(img, 0.025, bundle, stride_nm=0.1, n_views=1, frame=frame)
    np.testing.assert_allclose(dense.x_nm, window.x_nm)
    assert dense.values.shape == window.values.shape
    # the windows fall between the frame's nodes, whose features are mixed: an untrained
    # net's features are far from smooth in the shift, so only the sides are compared
    space = bundle.label_space
    left = dense.x_nm < 0.025 * 220 / 2 - 0.6
    d = space.distance(dense.values[:, left].reshape(-1, 2),
                       window.values[:, left].reshape(-1, 2))
    assert np.median(d) < 0.05


def test_modes_resolve_by_model_and_stride():
    ctx, plain = _bundle(), _bundle(context=0)
    assert supports_dense(ctx) and not supports_dense(plain)
    # dense where it costs less: below 0.6 of the 1.2 nm input (0.8 nm window, 0.2 nm margins)
    assert resolve_mode("auto", ctx, 0.1) == "dense"
    assert resolve_mode("auto", ctx, 0.7) == "dense"
    assert resolve_mode("auto", ctx, 0.75) == "window"
    assert resolve_mode("auto", plain, 0.1) == "window"
    assert resolve_mode("window", ctx, 0.1) == "window"
    with pytest.raises(UsageError, match="isolated windows"):
        resolve_mode("dense", plain, 0.1)
    with pytest.raises(UsageError, match="mode"):
        resolve_mode("fast", ctx, 0.1)
    assert dense_step_px(6.25, 32) == 8 and dense_step_px(3.0, 32) == 4


def test_a_coarse_dense_map_without_a_frame_keeps_the_stride_asked():
    """auto reads densely up to strides past the trunk's: the grid must stay the one asked
    (not snap to the trunk's node spacing), the windows then mixing their nodes' features."""
    bundle = _bundle()
    img = _lattice()
    stride = 0.5  # 20 px at 0.25 Å/px, past the tiny trunk's 8 px
    dense = dense_map(img, 0.025, bundle, stride_nm=stride)
    window = spm_map(img, 0.025, bundle, stride_nm=stride, n_views=1)
    assert dense.stride_nm == pytest.approx(stride)
    np.testing.assert_allclose(dense.x_nm, window.x_nm)
    np.testing.assert_allclose(dense.y_nm, window.y_nm)
    space = bundle.label_space
    d = space.distance(dense.values.reshape(-1, 2), window.values.reshape(-1, 2))
    assert np.median(d) < 0.05


def test_training_with_context_shows_a_random_margin(tmp_path):
    from stackview.datasets.store import ArraySource
    from stackview.inference.train import TrainConfig, context_crop, train

    rng = np.random.default_rng(0)
    images = rng.random((16, 64, 64)).astype(np.float32)
    labels = rng.random((16, 2)) * [6.0, 3.0]
    spec = RegressorSpec(backbone="tiny", material="ReS2", head="invariant", context_px=8,
                         window_px=32)
    seen = []
    model_cls = type(build_regressor(spec))
    original = model_cls.forward

    def spy(self, x, raw=False):
        seen.append(tuple(x.shape[-2:]))
        return original(self, x, raw)

    model_cls.forward = spy
    try:
        train(spec, ArraySource(images, labels), TrainConfig(steps=12, batch_size=4, seed=0))
    finally:
        model_cls.forward = original
    assert {s[0] for s in seen} == {48, 64}  # its own margin, and all the patches hold
    assert len(seen) == 12  # one reading per step
    assert context_crop(images, spec).shape[-1] == 48


def _training_reads(monkeypatch):
    """A list that collects the side (px) of every input the regressor reads in training."""
    from stackview.inference.regressor import StackingRegressor

    seen = []
    original = StackingRegressor.forward

    def spy(self, x, raw=False):
        if self.training:
            seen.append(int(x.shape[-1]))
        return original(self, x, raw)

    monkeypatch.setattr(StackingRegressor, "forward", spy)
    return seen


def test_consistency_training_reads_each_patch_at_two_margins(monkeypatch):
    """With a consistency weight every step reads the same patches at the model's own margin
    and at a larger one, and the squared difference of the two readings joins the loss."""
    from stackview.datasets.store import ArraySource
    from stackview.inference.train import TrainConfig, train

    rng = np.random.default_rng(0)
    images = rng.random((16, 80, 80)).astype(np.float32)
    labels = rng.random((16, 2)) * [6.0, 3.0]
    spec = RegressorSpec(backbone="tiny", material="ReS2", head="invariant", context_px=8,
                         window_px=32)
    seen = _training_reads(monkeypatch)
    losses = {}
    for weight in (0.0, 1e3 - 1):
        seen.clear()
        r = train(spec, ArraySource(images, labels),
                  TrainConfig(steps=8, batch_size=4, seed=0, context_consistency=weight,
                              checkpoint_every=1))
        losses[weight] = r.history[0]["loss"]
        pairs = list(zip(seen[0::2], seen[1::2]))
    assert len(seen) == 16 and all(a == 48 and b in (64, 80) for a, b in pairs)
    assert {b for _, b in pairs} == {64, 80}
    # at this weight the consistency term dominates the first step's loss
    assert losses[1e3 - 1] > losses[0.0] * 1.01
    with pytest.raises(UsageError, match="consistency"):
        TrainConfig(context_consistency=-1)
    with pytest.raises(UsageError, match="larger margin"):
        train(spec, ArraySource(images[:, 16:64, 16:64], labels),
              TrainConfig(steps=2, batch_size=4, context_consistency=1.0))


def test_the_check_reads_every_kth_window_of_a_fine_map():
    """At a fine stride the re-simulation check reads a quarter-window sub-grid; the other
    windows take the nearest checked window's agreement."""
    from stackview.analysis.trust import score_windows

    bundle = _bundle()
    img = _lattice()
    smap = dense_map(img, 0.025, bundle, stride_nm=0.1)  # 0.8 nm window: k = 2
    calls = []

    class Counting:
        def ncc(self, window, values):
            calls.append(1)
            return float(len(calls))

    sampler = WindowSampler.for_model(img, 0.025, bundle.card)
    score_windows(img, 0.025, smap, sampler, Counting())
    ny, nx = smap.values.shape[:2]
    assert smap.extra["ncc_check_every"] == 2
    assert len(calls) == ((ny + 1) // 2) * ((nx + 1) // 2)
    grid = smap.ncc_points.reshape(ny, nx)
    assert np.all(np.isfinite(grid))
    assert grid[0, 1] == grid[0, 0] and grid[1, 1] == grid[0, 0] and grid[0, 2] != grid[0, 0]
    coarse = spm_map(img, 0.025, bundle, stride_nm=0.3, n_views=1)
    calls.clear()
    score_windows(img, 0.025, coarse, sampler, Counting())
    assert len(calls) == coarse.n_patches and "ncc_check_every" not in coarse.extra


def test_the_two_level_search_reads_each_level_in_its_own_mode():
    from stackview.inference.spm import refine_map

    bundle = _bundle()
    img = _lattice()
    both = refine_map(img, 0.025, bundle, coarse_stride_nm=0.4, fine_stride_nm=0.1,
                      threshold=0.0, coarse_mode="dense", fine_mode="dense")
    coarse = dense_map(img, 0.025, bundle, stride_nm=0.4)
    assert both.extra["coarse_mode"] == "dense" and both.extra["fine_mode"] == "dense"
    level0 = both.points[both.points[:, -1] == 0]
    np.testing.assert_allclose(level0[:, 2:4], coarse.points[:, 2:4], atol=1e-6)
    windowed = refine_map(img, 0.025, bundle, coarse_stride_nm=0.4, fine_stride_nm=0.1,
                          threshold=0.0)
    assert windowed.extra["coarse_mode"] == "window"
    # every window flagged (threshold 0): the fine readings of the two runs cover one grid
    assert both.values.shape == windowed.values.shape


def test_consistency_read_as_label_errors_pairs_the_margins_and_joins_the_loss(monkeypatch):
    """--consistency-label-weight reads every patch at two margins even without the feature
    consistency, and the two readings' difference read in degrees joins the loss."""
    from stackview.datasets.store import ArraySource
    from stackview.inference.train import TrainConfig, train

    rng = np.random.default_rng(1)
    images = rng.random((16, 80, 80)).astype(np.float32)
    labels = rng.uniform(0, 60, (16, 1))
    spec = RegressorSpec(backbone="tiny", task="twist", material="MoS2", head="invariant",
                         context_px=8, window_px=32)
    seen = _training_reads(monkeypatch)
    losses = {}
    for weight in (0.0, 5e3):
        seen.clear()
        r = train(spec, ArraySource(images, labels),
                  TrainConfig(steps=2, batch_size=4, seed=0, consistency_label_weight=weight,
                              checkpoint_every=1))
        losses[weight] = r.history[0]["loss"]
        reads = len(seen)
    assert reads == 4  # two steps, each patch read at two margins
    assert losses[5e3] > losses[0.0] * 1.01
    with pytest.raises(UsageError, match="consistency label weight"):
        TrainConfig(consistency_label_weight=-1)
    direct = RegressorSpec(backbone="tiny", task="twist", material="MoS2", head="direct",
                           context_px=8, window_px=32)
    with pytest.raises(UsageError, match="invariant"):
        train(direct, ArraySource(images, labels),
              TrainConfig(steps=1, batch_size=4, consistency_label_weight=1.0))

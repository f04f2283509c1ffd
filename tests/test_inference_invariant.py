"""The invariant-feature head: features, decoding, loss, training and bundles."""

import numpy as np
import pytest
import torch

from stackview.core.labels import SlipLabels, TwistLabels
from stackview.datasets.store import ArraySource
from stackview.errors import UsageError
from stackview.inference.invariant import (
    InvariantDecoder,
    label_features,
    make_decoder,
    slip_features,
    trilayer_features,
)
from stackview.inference.loss import RawOutputLoss
from stackview.inference.regressor import RegressorSpec, build_regressor
from stackview.inference.train import TrainConfig, predict_batches, train
from stackview.models import ModelCard, load_bundle, save_bundle


@pytest.mark.parametrize("material", ["ReS2", "MoS2"])
@pytest.mark.parametrize("swap", [True, False])
def test_features_are_invariant_and_decode_exactly(material, swap):
    space = SlipLabels(material, layer_swap=swap)
    rng = np.random.default_rng(1)
    labels = rng.uniform(-9, 9, (300, 2))
    f = slip_features(labels, space.lengths_A, swap)
    shifted = labels + space.lengths_A * rng.integers(-3, 4, (300, 2))
    np.testing.assert_allclose(slip_features(shifted, space.lengths_A, swap), f, atol=1e-9)
    mirrored = slip_features(-labels, space.lengths_A, swap)
    if swap:
        np.testing.assert_allclose(mirrored, f, atol=1e-12)
    else:  # the sines tell D from -D
        assert np.abs(mirrored - f).max() > 0.5
    decoded, residual = InvariantDecoder(space.lengths_A, swap)(torch.from_numpy(f).float())
    assert space.distance(decoded.numpy(), labels).max() < 1e-4
    assert residual.max() < 1e-4
    # decoded values lie in the canonical domain
    for k, (lo, hi) in enumerate(space.domain_bounds_A()):
        assert decoded[:, k].min() >= lo - 1e-4 and decoded[:, k].max() <= hi + 1e-4


@pytest.mark.parametrize("material, mirror", [("MoS2", None), ("MoS2", False), ("ReS2", None)])
def test_twist_features_decode_into_the_domain(material, mirror):
    space = TwistLabels(material, mirror=mirror)
    rng = np.random.default_rng(3)
    theta = rng.uniform(-300, 300, 400)
    f = label_features(space, theta)
    equivalent = -theta if space.mirror else theta + space.period_deg
    np.testing.assert_allclose(label_features(space, equivalent), f, atol=1e-9)
    decoded, _ = make_decoder(space)(torch.from_numpy(f).float())
    assert space.distance(decoded[:, 0].numpy(), theta).max() < 1e-3
    lo, hi = space.domain_deg
    assert decoded.min() >= lo and decoded.max() <= hi
    if material == "MoS2" and space.mirror:  # θ and 60° − θ stay distinct
        other = label_features(space, 60.0 - np.array([20.0]))
        assert np.abs(other - label_features(space, np.array([20.0]))).max() > 0.5


def _orders(labels):
    from stackview.core.labels import layer_orders

    return [v.reshape(len(labels), 4) for v in layer_orders(labels.reshape(-1, 2, 2))]


def test_trilayer_features_are_invariant_and_decode_exactly():
    space = SlipLabels("ReS2", layers=3)
    rng = np.random.default_rng(4)
    labels = rng.uniform(-9, 9, (400, 4))
    f = trilayer_features(labels, space.lengths_A)
    shifted = labels + np.tile(space.lengths_A, 2) * rng.integers(-3, 4, (400, 4))
    np.testing.assert_allclose(trilayer_features(shifted, space.lengths_A), f, atol=1e-9)
    for other in _orders(labels)[1:]:  # any order of the three layers
        np.testing.assert_allclose(trilayer_features(other, space.lengths_A), f, atol=1e-9)
    # what the symmetries do not relate stays distinct: the inverted stack, one interface
    assert np.median(np.abs(trilayer_features(-labels, space.lengths_A) - f).max(1)) > 0.3
    assert np.median(np.abs(trilayer_features(labels * [1, 1, -1, -1], space.lengths_A)
                            - f).max(1)) > 0.3
    decoded, residual = make_decoder(space)(torch.from_numpy(f).float())
    assert space.distance(decoded.numpy(), labels).max() < 1e-3
    assert residual.max() < 1e-4
    np.testing.assert_allclose(decoded.numpy(), space.canonical(decoded.numpy()), atol=1e-4)
    # a feature error of 0.05 costs about 0.05 Å
    noisy = f + rng.normal(0, 0.05, f.shape)
    decoded, _ = make_decoder(space)(torch.from_numpy(noisy).float())
    assert np.mean(space.distance(decoded.numpy(), labels)) < 0.08


def test_trilayer_raw_loss_is_zero_on_true_features_and_on_every_layer_order():
    spec = RegressorSpec(backbone="tiny", layers=3, head="invariant")
    loss = RawOutputLoss(spec)
    labels = np.array([[1.0, 2.0, -0.5, 3.0], [3.5, 0.3, 2.0, 2.0]])
    raw = label_features(spec.label_space(), torch.from_numpy(labels)).float()
    for other in _orders(labels):
        assert loss(raw, torch.from_numpy(other).float()).item() < 1e-6
    assert loss(raw, torch.from_numpy(labels).float() + 1.0).item() > 0.01


def test_decoder_is_robust_to_feature_noise_and_flags_nonsense():
    space = SlipLabels("ReS2")
    rng = np.random.default_rng(2)
    labels = rng.uniform(0, 6, (400, 2))
    f = slip_features(labels, space.lengths_A) + rng.normal(0, 0.03, (400, 10))
    decoded, residual = InvariantDecoder(space.lengths_A)(torch.from_numpy(f).float())
    assert np.median(space.distance(decoded.numpy(), labels)) < 0.05
    # features that no slip produces leave a large residual
    _, bad = InvariantDecoder(space.lengths_A)(torch.full((1, 10), -1.0))
    assert bad.item() > 5 * residual.mean().item()


def test_spec_rejects_invariant_head_where_it_does_not_apply():
    assert RegressorSpec(backbone="tiny", head="invariant").n_raw == 10
    assert RegressorSpec(backbone="tiny", task="twist", material="MoS2", head="invariant").n_raw \
        == 3
    assert RegressorSpec(backbone="tiny", layers=3, head="invariant").n_raw == 22
    with pytest.raises(UsageError, match="head"):
        RegressorSpec(backbone="tiny", head="sideways")


def test_raw_loss_is_zero_on_true_features_and_symmetric():
    spec = RegressorSpec(backbone="tiny", head="invariant")
    space = spec.label_space()
    loss = RawOutputLoss(spec)
    labels = torch.tensor([[1.0, 2.0], [3.5, 0.3]])
    raw = slip_features(labels.double(), torch.tensor(space.lengths_A)).float()
    assert loss(raw, labels).item() < 1e-6
    equivalent = -labels + torch.tensor(space.lengths_A, dtype=torch.float32)
    assert loss(raw, equivalent).item() < 1e-6
    assert loss(raw, labels + 1.0).item() > 0.01


def _slip_images(labels, px=32):
    """Images that depend on the slip only through its invariant features (no simulator)."""
    space = SlipLabels("ReS2", layers=1 + labels.shape[1] // 2)
    yy, xx = np.mgrid[0:px, 0:px] / px
    f = label_features(space, labels)
    basis = [np.cos(2 * np.pi * (k + 1) * (xx + 0.3 * k * yy)) for k in range(f.shape[1])]
    return np.einsum("nk,kyx->nyx", f, np.array(basis)).astype(np.float32)


@pytest.mark.parametrize("layers", [2, 3])
def test_tiny_invariant_model_learns_and_round_trips_through_a_bundle(tmp_path, layers):
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 6, (16, 2 * (layers - 1)))
    images = _slip_images(labels)
    spec = RegressorSpec(backbone="tiny", material="ReS2", layers=layers, head="invariant")
    cfg = TrainConfig(steps=150, batch_size=16, lr=3e-3, warmup_steps=3, checkpoint_every=0,
                      threads=1, precision="fp32", channels_last=False, seed=0)
    res = train(spec, ArraySource(images, labels), cfg)
    space = spec.label_space()
    pred = predict_batches(res.model, images)
    err = space.distance(pred, labels)
    baseline = space.distance(np.full_like(labels, labels.mean(0)), labels)
    assert err.mean() < 0.5 * baseline.mean(), (err.mean(), baseline.mean())
    assert res.history[-1]["loss"] < 0.05
    card = ModelCard(name="inv", spec=spec.to_dict(), sampling_A=0.2, patch_px=32)
    save_bundle(tmp_path / "inv", res.model, card, half=False)
    loaded = load_bundle(tmp_path / "inv")
    assert loaded.model.spec.head == "invariant"
    np.testing.assert_allclose(predict_batches(loaded.model, images), pred, atol=1e-4)
    # the decoding table is rebuilt from the spec, not stored with the weights
    assert not any("decoder" in k for k in res.model.state_dict())


def test_direct_head_is_unchanged_by_raw_mode():
    spec = RegressorSpec(backbone="tiny")
    model = build_regressor(spec, seed=0).eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        raw = model(x, raw=True)
        np.testing.assert_allclose(model(x).numpy(),
                                   (model.label_offset + model.label_scale * raw).numpy(),
                                   rtol=1e-6)


def test_linearised_label_error_is_the_decoded_error_and_weighs_fixed_points_up(monkeypatch):
    import stackview.inference.invariant as invariant
    from stackview.inference.loss import linearised_label_error

    monkeypatch.setattr(invariant, "GAIN_RANGE", (1.0, 1.0))  # the decoder at face value

    spec = RegressorSpec(backbone="tiny", head="invariant")
    space = spec.label_space()
    decoder = make_decoder(space)
    unit = torch.tensor(np.asarray(space.material.unit_vectors))
    rng = np.random.default_rng(5)
    # away from the fixed points: the error a decoder reads from slightly wrong features
    labels = torch.tensor([[1.2, 1.0], [4.4, 2.3], [2.5, 0.9]], dtype=torch.float64)
    raw = (label_features(space, labels) + torch.from_numpy(rng.normal(0, 1e-3, (3, 10))))
    decoded, _ = decoder(raw.float())
    read = (decoded.double() - labels) @ unit
    lin = linearised_label_error(space, raw.float(), labels.float())
    np.testing.assert_allclose(lin.numpy(), read.numpy(), atol=2e-5)
    # the same feature error costs more near D = 0 (AA), where the cosines are flat, so the
    # weighted loss is larger there than where the features carry the slip to first order
    near = torch.tensor([[0.1, 0.15], [1.6, 0.8]])
    bump = torch.full((2, 10), 0.01)
    loss = RawOutputLoss(spec, label_error_weight=1.0)
    plain = RawOutputLoss(spec)
    extra = [loss(label_features(space, near[i:i + 1]) + bump[:1], near[i:i + 1]).item()
             - plain(label_features(space, near[i:i + 1]) + bump[:1], near[i:i + 1]).item()
             for i in range(2)]
    assert extra[0] > 3 * extra[1] > 0
    # and it stays finite exactly at the fixed point
    assert np.isfinite(loss(label_features(space, torch.zeros(1, 2)) + bump[:1],
                            torch.zeros(1, 2)).item())


@pytest.mark.parametrize("kwargs", [dict(layers=3), dict(task="twist", material="MoS2"),
                                    dict(material="MoS2", family="both")])
def test_label_error_term_runs_on_every_invariant_space_and_has_a_gradient(kwargs):
    spec = RegressorSpec(backbone="tiny", head="invariant", **kwargs)
    space = spec.label_space()
    if "task" in kwargs:
        labels = torch.tensor([[7.0], [33.0]])
    elif spec.layers == 3:
        labels = torch.tensor([[1.0, 2.0, -0.5, 3.0], [3.5, 0.3, 2.0, 2.0]])
    else:
        labels = torch.tensor([[1.0, 0.5, 0.0], [0.4, 1.1, 1.0]])
    raw = (label_features(space, labels) + 0.01).requires_grad_()
    with_term = RawOutputLoss(spec, label_error_weight=1.0)(raw, labels)
    with_term.backward()
    assert with_term.item() > RawOutputLoss(spec)(raw.detach(), labels).item()
    assert raw.grad.abs().sum().item() > 0
    # the term is zero on the true features (a family logit's cross-entropy is not)
    exact = label_features(space, labels)
    assert abs(RawOutputLoss(spec, label_error_weight=1.0)(exact, labels).item()
               - RawOutputLoss(spec)(exact, labels).item()) < 1e-4


@pytest.mark.parametrize("material", ["ReS2", "ReSe2"])
def test_decoder_reads_shrunk_features_near_the_fixed_points(material, monkeypatch):
    # a squared-loss regressor predicts the features' mean over the slips an image leaves
    # possible, i.e. shrunk features; taken at face value they read farther from AA
    import stackview.inference.invariant as invariant

    space = SlipLabels(material)
    labels = np.array([[0.07, 0.21], [0.15, -0.1], [0.3, 0.05], [3.1, 0.12], [6.35, 3.2]])
    shrunk = torch.from_numpy(0.95 * label_features(space, labels))
    decoded, _ = make_decoder(space)(shrunk)
    err = space.distance(decoded.numpy()[:, :2], labels)
    assert err.max() < 0.01
    monkeypatch.setattr(invariant, "GAIN_RANGE", (1.0, 1.0))
    face_value, _ = make_decoder(space)(shrunk)
    face_err = space.distance(face_value.numpy()[:, :2], labels)
    assert face_err.max() > max(0.015, 3 * err.max())


def test_label_error_weight_out_of_range_is_one_clear_error():
    with pytest.raises(UsageError, match="label error weight"):
        TrainConfig(label_error_weight=-1)


def test_twist_decoder_reads_shrunk_features_near_the_ends(monkeypatch):
    # noisy windows shrink the twist features too; at face value they read farther from the
    # flat ends of the domain (0° and 60° for MoS2), by degrees where the features are flattest
    import stackview.inference.invariant as invariant

    space = TwistLabels("MoS2")
    theta = np.array([1.5, 3.0, 20.0, 40.0, 57.0, 58.5])
    shrunk = torch.from_numpy(0.9 * label_features(space, theta))
    decoded, _ = make_decoder(space)(shrunk)
    assert space.distance(decoded[:, 0].numpy(), theta).max() < 0.01
    monkeypatch.setattr(invariant, "GAIN_RANGE", (1.0, 1.0))
    face_value, _ = make_decoder(space)(shrunk)
    face_err = space.distance(face_value[:, 0].numpy(), theta)
    assert face_err[[0, 5]].min() > 1.0 and face_err.min() > 0.1

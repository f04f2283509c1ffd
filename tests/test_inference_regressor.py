"""Regressor, symmetric loss, training loop: loss symmetry, overfitting, exact resume."""

import numpy as np
import pytest
import torch

from stackview.core.labels import SlipLabels, TwistLabels
from stackview.datasets.store import ArraySource
from stackview.engine.jobs import CancelToken
from stackview.errors import Cancelled, UsageError
from stackview.inference.loss import SymmetricSlipLoss, SymmetricTwistLoss, mse_l1
from stackview.inference.regressor import RegressorSpec, build_regressor
from stackview.inference.train import (
    TrainConfig,
    batch_indices,
    load_checkpoint,
    predict_batches,
    train,
)


@pytest.fixture(params=[("ReS2", 2), ("ReS2", 3), ("MoS2", 2)])
def slip(request):
    material, layers = request.param
    return SlipLabels(material, layers=layers)


def test_slip_loss_zero_on_equivalent_labels(slip):
    loss = SymmetricSlipLoss(slip)
    rng = np.random.default_rng(0)
    true = rng.uniform(-5, 5, size=(6, slip.n_outputs))
    for k in range(6):
        eq = slip.equivalents(true[k])  # (M, n): lattice shifts and layer swap
        per = loss(torch.tensor(eq), torch.tensor(np.repeat(true[k : k + 1], len(eq), 0)),
                   reduction="none")
        assert per.shape == (len(eq),)
        assert float(per.max()) < 1e-9


def test_slip_loss_matches_label_distance(slip):
    loss = SymmetricSlipLoss(slip)
    rng = np.random.default_rng(1)
    pred = rng.uniform(-8, 8, size=(400, slip.n_outputs))
    true = rng.uniform(-8, 8, size=(400, slip.n_outputs))
    d_torch = loss.distance(torch.tensor(pred), torch.tensor(true)).numpy()
    np.testing.assert_allclose(d_torch, slip.distance(pred, true), atol=2e-5)
    err, best = loss.residual(torch.tensor(pred).float(), torch.tensor(true).float())
    err_np, best_np = slip.residual(pred, true)
    np.testing.assert_allclose(err.numpy(), err_np, atol=2e-5)
    np.testing.assert_allclose(best.numpy(), best_np, atol=2e-4)
    # the loss is MSE + 0.5 L1 of exactly that Cartesian error
    per = loss(torch.tensor(pred), torch.tensor(true), reduction="none").numpy()
    flat = err_np.reshape(len(pred), -1)
    np.testing.assert_allclose(per, (flat**2).mean(1) + 0.5 * np.abs(flat).mean(1), rtol=1e-4)


def test_slip_loss_equals_plain_loss_near_the_truth(slip):
    """With the given label already the nearest equivalent, nothing changes."""
    loss = SymmetricSlipLoss(slip)
    rng = np.random.default_rng(2)
    true = np.array(slip.canonical(rng.uniform(0, 6, size=(50, slip.n_outputs))))
    # keep away from the domain edges so that the label itself is the nearest equivalent
    true = 0.25 * slip.lengths_A.mean() + 0.5 * true / np.tile(slip.lengths_A, slip.layers - 1)
    noise = 0.05
    if slip.uses_group:  # MoS2: near the centre of its small chamber (inradius ~0.3 Å)
        from stackview.core.stacking import chamber_frac

        centre = chamber_frac(slip.material, "parallel").mean(0) * slip.lengths_A
        true = centre + rng.uniform(-0.08, 0.08, size=true.shape)
        noise = 0.02
    pred = true + rng.normal(0, noise, size=true.shape)
    cart = np.concatenate([slip.material.slip_to_cartesian(p.reshape(-1, 2)).reshape(1, -1)
                           for p in pred - true])
    plain = mse_l1(torch.tensor(cart)).numpy()
    sym = loss(torch.tensor(pred), torch.tensor(true), reduction="none").numpy()
    np.testing.assert_allclose(sym, plain, rtol=1e-4, atol=1e-9)


def test_slip_loss_gradient_points_to_nearest_equivalent():
    s = SlipLabels("ReS2")
    loss = SymmetricSlipLoss(s)
    true = torch.tensor([[1.0, 1.5]])
    pred = torch.tensor([[-1.1, -1.5]], requires_grad=True)  # nearest: -true (layer swap)
    loss(pred, true).backward()
    # the error is pred - (-true) = (-0.1, 0): the loss falls as Da rises towards -1.0
    assert pred.grad[0, 0] < 0
    with torch.no_grad():
        stepped = pred - 0.01 * pred.grad
    assert loss(stepped, true) < loss(pred, true)


def test_twist_loss_symmetry_and_distance():
    t = TwistLabels("MoS2")
    loss = SymmetricTwistLoss(t)
    theta = torch.tensor([10.0, 10.0, 10.0, 10.0])
    equivalent = torch.tensor([10.0, -10.0, 130.0, 110.0])  # +120°, mirror, mirror+120°
    assert float(loss(equivalent, theta)) == pytest.approx(0.0, abs=1e-9)
    # θ and 60° − θ are different stacks: 10° vs 50° is a 40° error... folded: min(40, 60)
    assert float(loss.distance(torch.tensor([50.0]), torch.tensor([10.0]))) == pytest.approx(
        float(t.distance(50.0, 10.0)))
    rng = np.random.default_rng(3)
    p, q = rng.uniform(-200, 200, 300), rng.uniform(0, 60, 300)
    np.testing.assert_allclose(loss.distance(torch.tensor(p), torch.tensor(q)).numpy(),
                               t.distance(p, q), atol=1e-4)
    e = 0.3
    assert float(loss(torch.tensor([20.0 + e]), torch.tensor([20.0]))) == pytest.approx(
        e**2 + 0.5 * e, rel=1e-5)


def test_spec_round_trip_and_normalisation():
    spec = RegressorSpec(backbone="resnet18", task="slip", material="ReS2", layers=3)
    assert spec.n_outputs == 4
    assert RegressorSpec.from_dict(spec.to_dict()) == spec
    bounds = SlipLabels("ReS2", layers=3).domain_bounds_A()
    for (lo, hi), off, sc in zip(bounds, spec.label_offset, spec.label_scale, strict=True):
        assert off - sc == pytest.approx(lo) and off + sc == pytest.approx(hi)
    twist = RegressorSpec(backbone="resnet18", task="twist", material="MoS2")
    assert twist.label_offset == (30.0,) and twist.label_scale == (30.0,)
    with pytest.raises(UsageError):
        RegressorSpec(backbone="resnet18", task="twist", material="MoS2", layers=3)
    with pytest.raises(UsageError, match="unknown backbone"):
        build_regressor(RegressorSpec(backbone="resnet9000"))


def test_regressor_shapes_and_intensity_invariance():
    model = build_regressor(RegressorSpec(backbone="resnet18", material="ReS2"), seed=0).eval()
    assert model.backbone.conv1.in_channels == 1
    x = torch.rand(3, 1, 40, 40)
    with torch.no_grad():
        y = model(x)
        y2 = model(5.0 * x + 2.0)  # each image is standardised
    assert y.shape == (3, 2)
    torch.testing.assert_close(y, y2, atol=1e-4, rtol=1e-4)
    # same seed, same weights
    other = build_regressor(RegressorSpec(backbone="resnet18", material="ReS2"), seed=0).eval()
    with torch.no_grad():
        torch.testing.assert_close(other(x), y)


def test_lr_schedule_and_batch_order():
    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=10)
    assert cfg.lr_at(0) == pytest.approx(1e-4)
    assert cfg.lr_at(9) == pytest.approx(1e-3)
    assert cfg.lr_at(55) == pytest.approx(1e-3 * 45 / 90)
    assert cfg.lr_at(99) == pytest.approx(1e-3 / 90)
    # every sample once per epoch, reproducible
    seen = np.concatenate([batch_indices(s, 12, 4, seed=5) for s in range(3)])
    assert sorted(seen.tolist()) == list(range(12))
    np.testing.assert_array_equal(batch_indices(7, 12, 4, 5), batch_indices(7, 12, 4, 5))


def _tiny_data(n=8, px=32, seed=0):
    """Images whose content depends smoothly on the label (fast, no simulator)."""
    rng = np.random.default_rng(seed)
    labels = np.column_stack([rng.uniform(0.5, 5.5, n), rng.uniform(0.3, 3.0, n)])
    yy, xx = np.mgrid[0:px, 0:px] / px
    images = np.stack([np.sin(2 * np.pi * (xx * (1 + a / 3) + yy * b / 3)) + 0.5 * np.cos(
        2 * np.pi * yy * (1 + b)) for a, b in labels]).astype(np.float32)
    return images, labels


def test_tiny_model_overfits_a_handful_of_samples():
    torch.set_num_threads(2)
    images, labels = _tiny_data()
    spec = RegressorSpec(backbone="tiny", material="ReS2")
    cfg = TrainConfig(steps=100, batch_size=8, lr=3e-3, warmup_steps=3, checkpoint_every=0,
                      threads=1, precision="fp32", channels_last=False, seed=0)
    losses = []
    res = train(spec, ArraySource(images, labels), cfg,
                progress=lambda d, t, m="": losses.append(m))
    first = float(losses[1].split()[1])
    last = float(losses[-1].split()[1])
    assert last < first / 10, (first, last)  # the training loss falls at least tenfold
    err = spec.label_space().distance(predict_batches(res.model, images), labels)
    assert err.mean() < 0.5 * spec.label_space().distance(
        np.full_like(labels, labels.mean(0)), labels).mean()


def test_checkpoint_resume_is_identical(tmp_path):
    torch.set_num_threads(2)
    images, labels = _tiny_data(n=6)
    spec = RegressorSpec(backbone="tiny", material="ReS2")
    cfg = TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=2, checkpoint_every=2,
                      precision="fp32", channels_last=False, seed=1)
    src = ArraySource(images, labels)
    straight = train(spec, src, cfg, out_dir=tmp_path / "a")

    cancel = CancelToken()

    def stop_after_3(done, total, message=""):
        if done == 3:
            cancel.cancel()

    with pytest.raises(Cancelled):
        train(spec, src, cfg, out_dir=tmp_path / "b", progress=stop_after_3, cancel=cancel)
    state, _ = load_checkpoint(tmp_path / "b")
    assert state["step"] == 3
    resumed = train(spec, src, cfg, out_dir=tmp_path / "b", resume=True)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(),
                              resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    final, tensors = load_checkpoint(tmp_path / "b")
    assert final["step"] == 6 and any(k.startswith("optim.") for k in tensors)
    # a checkpoint made with other settings is refused
    with pytest.raises(UsageError, match="steps"):
        train(spec, src, TrainConfig(steps=8, batch_size=4, warmup_steps=2, seed=1,
                                     precision="fp32", channels_last=False),
              out_dir=tmp_path / "b", resume=True)

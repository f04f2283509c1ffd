"""Group-averaged slip features and the family head (stackview.inference.group_features), and
datasets of both stacking families."""

import numpy as np
import pytest
import torch

from stackview.core.labels import SlipLabels
from stackview.datasets.generate import sample_conditions, sample_labels
from stackview.datasets.spec import DatasetSpec
from stackview.inference.group_features import (
    GroupDecoder,
    GroupFeatures,
    group_label_features,
    group_raw_loss,
    n_group_features,
)
from stackview.inference.regressor import RegressorSpec


def _labels(space, n, seed=0):
    rng = np.random.default_rng(seed)
    lab = rng.uniform(0, space.material.a_A, (n, 2))
    if space.family == "both":
        lab = np.c_[lab, rng.integers(0, 2, n)]
    return lab


@pytest.mark.parametrize("family", ["parallel", "antiparallel"])
def test_features_are_invariant_and_decode_back(family):
    space = SlipLabels("MoS2", family=family)
    lab = _labels(space, 400)
    f = group_label_features(space, lab)
    for q in space.label_ops():
        shifted = lab @ q + [space.material.a_A, -space.material.b_A]
        np.testing.assert_allclose(group_label_features(space, shifted), f, atol=1e-9)
    decoded, residual = GroupDecoder(space)(torch.from_numpy(f))
    assert np.percentile(space.distance(decoded.numpy(), lab), 99) < 1e-3
    assert float(residual.max()) < 0.05


def test_sines_tell_aa_prime_from_a_prime_b():
    space = SlipLabels("MoS2", family="antiparallel")
    g = GroupFeatures(space)
    assert g.n_sin > 0
    delta = np.array([[1 / 3, 2 / 3]]) * space.lengths_A
    fa, fb = group_label_features(space, delta), group_label_features(space, -delta)
    np.testing.assert_allclose(fa[:, :g.n_cos], fb[:, :g.n_cos], atol=1e-9)  # cosines agree
    assert np.abs(fa[:, g.n_cos:] - fb[:, g.n_cos:]).max() > 0.5
    # in the parallel family the sines vanish: only cosines are features
    assert n_group_features(SlipLabels("MoS2")) == g.n_cos


def test_both_families_head_loss_and_decoder():
    space = SlipLabels("MoS2", family="both")
    lab = _labels(space, 200, seed=1)
    target = torch.from_numpy(group_label_features(space, lab))
    n = n_group_features(space)
    assert target.shape == (200, n)
    raw = target.clone()
    raw[:, 0] = torch.where(target[:, 0] > 0.5, 8.0, -8.0)  # confident logits
    assert float(group_raw_loss(space, raw, torch.from_numpy(lab), 0.5)) < 1e-3
    # the sines of parallel samples do not count; a wrong family does
    noisy = raw.clone()
    par = torch.from_numpy(lab[:, 2] == 0)
    noisy[par, -3:] += 5.0
    assert float(group_raw_loss(space, noisy, torch.from_numpy(lab), 0.5)) < 1e-3
    flipped = raw.clone()
    flipped[:, 0] *= -1
    assert float(group_raw_loss(space, flipped, torch.from_numpy(lab), 0.5)) > 5.0
    decoded, _ = GroupDecoder(space)(raw)
    out = decoded.numpy()
    assert np.all((out[:, 2] > 0.99) == (lab[:, 2] == 1))
    assert np.percentile(space.distance(out, lab), 99) < 1e-3
    spec = RegressorSpec(backbone="resnet18", material="MoS2", family="both", head="invariant")
    assert spec.n_outputs == 3 and spec.n_raw == n


def test_dataset_of_both_families():
    spec = DatasetSpec(material="MoS2", family="both", count=40, patch_px=32)
    assert spec.label_names() == ("Da_A", "Db_A", "family")
    lab = sample_labels(spec)
    assert lab.shape == (40, 3) and lab[:, 2].sum() == 20
    cond = sample_conditions(spec, 40)
    assert set(np.unique(cond["half_turn"])) == {0, 1}
    # ReS2 (2-fold layers): no half turns, and no family column
    assert not sample_conditions(DatasetSpec(count=10, patch_px=32), 10)["half_turn"].any()
    grid = sample_labels(spec.replace(mode="grid", step_A=1.0, count=1))
    assert set(grid[:, 2]) == {0.0, 1.0} and len(grid) == 2 * 16


def test_a_tiny_model_of_both_families_trains_and_learns_the_family():
    """The training loop runs the family head (an invariant head has no label loss) and the
    family it learns on a handful of windows of each family is right."""
    from stackview.datasets.store import ArraySource
    from stackview.inference.train import TrainConfig, predict_batches, train
    from stackview.materials import build_stack
    from stackview.simulation import PRESETS, simulate

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    images, labels = [], []
    for k in range(8):
        slip = rng.uniform(0, 3.0, 2)
        anti = k % 2 == 1
        atoms = build_stack("MoS2", [slip], fov_A=(10.0, 10.0), margin_A=10, antiparallel=anti)
        images.append(simulate(atoms, PRESETS["MoS2-60kV"], sampling_A=0.3,
                               fov_A=(10.0, 10.0)).image.astype(np.float32))
        labels.append([*slip, float(anti)])
    images, labels = np.stack(images)[:, :32, :32], np.array(labels)
    spec = RegressorSpec(backbone="tiny", material="MoS2", family="both", head="invariant")
    cfg = TrainConfig(steps=60, batch_size=8, lr=3e-3, warmup_steps=3, checkpoint_every=0,
                      threads=1, precision="fp32", channels_last=False, seed=0)
    res = train(spec, ArraySource(images, labels), cfg)
    pred = predict_batches(res.model, images)
    assert pred.shape == (8, 3)
    assert np.all((pred[:, 2] >= 0.5) == (labels[:, 2] == 1))

import math

import numpy as np
import pytest

from stackview.errors import UsageError
from stackview.core.labels import SlipLabels, TwistLabels, projected_symmetry
from stackview.materials import get_material


@pytest.fixture(params=["ReS2", "MoS2", "ReSe2"])
def slip(request):
    return SlipLabels(request.param)


def test_distance_zero_for_lattice_translations_and_inversion(slip):
    a, b = slip.lengths_A
    d = np.array([1.0, 0.7])
    for eq in ([1.0 + a, 0.7], [1.0, 0.7 - b], [1.0 - 2 * a, 0.7 + 3 * b], [-1.0, -0.7],
               [-1.0 + a, -0.7 + b]):
        assert slip.distance(d, eq) == pytest.approx(0.0, abs=1e-6)


def test_distance_is_cartesian_length(slip):
    m = slip.material
    d = slip.distance([0.5, 0.5], [0.5 + 0.05, 0.5 - 0.03])
    expected = np.linalg.norm(m.slip_to_cartesian([0.05, -0.03]))
    assert d == pytest.approx(expected, rel=1e-9)


def test_distance_without_layer_swap_distinguishes_inverse():
    s = SlipLabels("ReS2", layer_swap=False)
    assert s.distance([1.0, 1.5], [-1.0, -1.5]) > 1.0


def test_canonical_domain_and_idempotence(slip):
    rng = np.random.default_rng(0)
    labels = rng.uniform(-20, 20, size=(500, 2))
    can = slip.canonical(labels)
    a, b = slip.lengths_A
    # MoS2's chamber (folded by its whole point group) is checked in test_core_stacking.py
    if not slip.uses_group:
        assert np.all((can[:, 0] >= 0) & (can[:, 0] < a))
        assert np.all((can[:, 1] >= 0) & (can[:, 1] <= b / 2 + 1e-9))
    np.testing.assert_allclose(slip.canonical(can), can, atol=1e-6)
    assert np.allclose(slip.distance(labels, can), 0.0, atol=1e-6)
    # equivalent inputs share one canonical representative
    np.testing.assert_allclose(slip.canonical(-labels), can, atol=1e-6)


def test_equivalents_all_at_zero_distance(slip):
    eq = slip.equivalents([0.3, 1.1])
    assert eq.shape == (9 * len(slip.label_ops()), 2)  # 18 for ReS2, 108 for MoS2 (±3m)
    assert np.allclose(slip.distance(eq, [0.3, 1.1]), 0.0, atol=1e-6)


def test_residual_gives_equivalent_true_label():
    s = SlipLabels("ReS2")
    pred = np.array([-1.02, -1.48])
    err, best = s.residual(pred, [1.0, 1.5])
    np.testing.assert_allclose(best, [-1.0, -1.5], atol=1e-9)
    assert np.linalg.norm(err) == pytest.approx(s.distance(pred, [1.0, 1.5]))


def test_trilayer_swap_equivalence():
    s = SlipLabels("ReS2", layers=3)
    a, _ = s.lengths_A
    t = [1.0, 1.5, 0.3, 0.2]
    assert s.distance(t, [-0.3, -0.2, -1.0, -1.5]) == pytest.approx(0, abs=1e-9)
    assert s.distance(t, [1.0 + a, 1.5, 0.3 - a, 0.2]) == pytest.approx(0, abs=1e-9)
    # swapping only one interface is a different stack
    assert s.distance(t, [-1.0, -1.5, 0.3, 0.2]) > 1.0
    np.testing.assert_allclose(s.canonical([t, [-0.3, -0.2, -1.0, -1.5]])[0],
                               s.canonical([t, [-0.3, -0.2, -1.0, -1.5]])[1], atol=1e-9)
    with pytest.raises(UsageError):
        s.distance([1, 2], [1, 2])


def _best_ncc(a, b, margin):
    """Largest normalised cross-correlation of b's centre anywhere in a (translation search)."""
    from scipy.signal import fftconvolve

    t = b[margin:-margin, margin:-margin]
    t = (t - t.mean()) / t.std()
    ones = np.ones(t.shape)
    corr = fftconvolve(a, t[::-1, ::-1], mode="valid")
    s1 = fftconvolve(a, ones, mode="valid")
    s2 = fftconvolve(a * a, ones, mode="valid")
    n = t.size
    std = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 1e-12))
    return float((corr / (n * std)).max())


def test_every_order_of_a_trilayers_layers_gives_the_same_image(tmp_path):
    """The projection does not tell which layer is in the middle: the six orders of the layer
    offsets {0, D1, D1 + D2} are one image (up to a translation), and the label space says so;
    (−D1, −D2) is a different image and a different label."""
    import tifffile

    from stackview.cli import main
    from stackview.core.labels import layer_orders

    s = SlipLabels("ReS2", layers=3)
    t = np.array([1.0, 1.5, 2.0, 0.7])
    variants = [v.reshape(-1) for v in layer_orders(t.reshape(2, 2))] + [-t]
    images = []
    for k, v in enumerate(variants):
        out = tmp_path / f"v{k}.tif"
        assert main(["simulate", "--material", "ReS2", "--layers", "3", "--slip", str(v[0]),
                     str(v[1]), "--slip2", str(v[2]), str(v[3]), "--fov", "3", "--sampling",
                     "0.15", "--out", str(out)]) == 0
        images.append(tifffile.imread(out).astype(float))
    for v, image in zip(variants[1:6], images[1:6], strict=True):
        assert _best_ncc(images[0], image, 50) > 0.99
        assert s.distance(v, t) == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(s.canonical(v), s.canonical(t), atol=1e-9)
    assert _best_ncc(images[0], images[6], 50) < 0.9
    # ... and that of the half-turned image (ReS2 layers are centrosymmetric): the test-time
    # view "rot180" maps its prediction back by a sign change
    assert _best_ncc(images[0][::-1, ::-1], images[6], 50) > 0.99
    assert s.distance(-t, t) > 0.5


def test_projected_symmetry():
    assert projected_symmetry("MoS2") == (3, True)
    assert projected_symmetry("ReS2") == (2, False)


def test_twist_domain_and_distance_mos2():
    t = TwistLabels(get_material("MoS2"))
    assert t.domain_deg == (0.0, 60.0)
    np.testing.assert_allclose(t.canonical([20, 40, 140, -20, 100, 60]), [20, 40, 20, 20, 20, 60])
    assert t.distance(20, 140) == pytest.approx(0)
    assert t.distance(20, -20) == pytest.approx(0)
    # theta and 60 - theta are different stacks
    assert t.distance(20, 40) == pytest.approx(20)
    assert t.distance(1, 59) == pytest.approx(58)
    assert t.distance(59.5, 0.5) == pytest.approx(59)


def test_twist_period_res2():
    t = TwistLabels(get_material("ReS2"))
    assert t.domain_deg == (0.0, 180.0)
    assert t.distance(10, 190) == pytest.approx(0)
    assert t.distance(10, -10) == pytest.approx(20)
    assert math.isclose(t.period_deg, 180.0)

"""Metrics on known inputs, the physics-noise baseline and atom-column retention."""

import numpy as np
import pytest
from style_images import lattice

from stackview.style.evaluate import evaluate_style
from stackview.style.metrics import (
    kl_divergence,
    line_profile,
    mean_profile_ra,
    psnr,
    radial_power_spectrum,
    roughness_ra,
    spectrum_distance,
    style_scores,
)
from stackview.style.physics_noise import (
    PhysicsNoise,
    fit_physics_noise,
    gaussian_noise,
)
from stackview.style.retention import column_displacement, find_columns


def test_kl_divergence():
    rng = np.random.default_rng(0)
    a = rng.random((64, 64))
    assert kl_divergence(a, a) == 0.0
    assert kl_divergence(a, np.flipud(a)) == pytest.approx(0.0, abs=1e-12)  # same histogram
    b = rng.random((64, 64)) ** 4
    assert kl_divergence(a, b) > 0.3
    assert kl_divergence([a, a], a) == pytest.approx(0.0, abs=1e-12)


def test_psnr_of_known_noise():
    rng = np.random.default_rng(1)
    a = rng.random((256, 256))
    assert psnr(a, a) == float("inf")
    noisy = a + 0.1 * rng.standard_normal(a.shape)
    assert psnr(a, noisy) == pytest.approx(20.0, abs=0.1)  # 10 log10(1 / 0.01)
    assert psnr(a, a + 0.5) == pytest.approx(10 * np.log10(1 / 0.25))


def test_line_profile_and_ra():
    x = np.linspace(0, 8 * np.pi, 4001)
    assert roughness_ra(np.sin(x)) == pytest.approx(2 / np.pi, rel=1e-3)
    assert roughness_ra(np.full(10, 3.0)) == 0.0
    img = np.tile(np.arange(10.0), (5, 1))
    assert np.allclose(line_profile(img, (2, 0), (2, 9)), np.arange(10.0))
    assert np.allclose(line_profile(img, (0, 3), (4, 3), width_px=3), 3.0)
    assert mean_profile_ra(np.full((20, 20), 0.5)) == 0.0


def test_power_spectrum():
    n = 128
    xx = np.arange(n)[None, :] * np.ones((n, 1))
    img = np.cos(2 * np.pi * xx / 8)  # 0.125 cycles/px
    f, p = radial_power_spectrum(img, 64)
    assert f[np.argmax(p)] == pytest.approx(0.125, abs=0.5 / 64)
    assert p.sum() == pytest.approx(1.0)
    assert spectrum_distance(img, img) == 0.0
    assert spectrum_distance(img, np.cos(2 * np.pi * xx / 5)) > 0.5


def test_physics_noise():
    sim = lattice(96)
    noise = PhysicsNoise(dose_per_px=10, scan_jitter_px=0.5, drift_px=(0.0, 2.0))
    a, b = noise.apply(sim, 3), noise.apply(sim, 3)
    assert np.array_equal(a, b) and a.shape == sim.shape
    assert 0 <= a.min() and a.max() == 1.0
    # lower dose, noisier: lower PSNR against the clean image
    assert psnr(sim, PhysicsNoise(dose_per_px=5).apply(sim, 0)) < psnr(
        sim, PhysicsNoise(dose_per_px=500).apply(sim, 0)
    )
    exp = PhysicsNoise(dose_per_px=12, source_blur_px=2.0).apply(lattice(96, shift=(2, 3)), 9)
    fitted = fit_physics_noise(sim, [exp], doses=(3, 12, 100), blurs_px=(0.0, 2.0))
    assert fitted.dose_per_px == 12 and fitted.source_blur_px == 2.0
    g = gaussian_noise(sim, 0.2, 0)
    assert kl_divergence([exp], g) < kl_divergence([exp], sim)
    with pytest.raises(ValueError):
        PhysicsNoise(dose_per_px=0)


def test_atom_columns_and_displacement():
    a_px = 10.0
    sim = lattice(128, a_px=a_px)
    cols = find_columns(sim, min_distance_px=3)
    # hexagonal lattice: area per column = sqrt(3)/2 a^2; interior 128-2*3 px square
    expected = (128 - 6) ** 2 / (np.sqrt(3) / 2 * a_px**2)
    assert abs(len(cols) - expected) / expected < 0.15
    shifted = lattice(128, a_px=a_px, shift=(0.0, 0.7))
    d = column_displacement(sim, shifted, min_distance_px=3, sampling_A=0.2)
    assert d["matched"] > 0.95 and d["extra"] < 0.05
    assert d["mean_px"] == pytest.approx(0.7, abs=0.05)
    assert d["mean_A"] == pytest.approx(0.14, abs=0.01)
    assert column_displacement(sim, sim, 3)["mean_px"] == pytest.approx(0.0, abs=1e-9)
    # noise moves no column; smoothing over about a column's width halves what it seems to move
    noisy = PhysicsNoise(dose_per_px=10).apply(sim, 1)
    floor_1px = column_displacement(sim, noisy, 3, smooth_px=1.0)["mean_px"]
    assert column_displacement(sim, noisy, 3, smooth_px=2.0)["mean_px"] < 0.8 * floor_1px


def test_style_scores_and_evaluation_table():
    sim = lattice(96)
    exp = [PhysicsNoise(dose_per_px=15, source_blur_px=1.5).apply(lattice(96, shift=(1, 2)), 4)]
    s = style_scores(exp[0], exp, source=sim)
    assert s["kl"] == 0.0 and s["psd"] == 0.0 and s["ra_diff"] == 0.0 and s["kl_robust"] == 0.0
    # a few hot pixels squash the min-max histogram; the percentile-normalised KL ignores them
    hot = exp[0].copy()
    hot.flat[::997] = 6.0
    s_hot = style_scores(exp[0], [hot])
    assert s_hot["kl"] > 1.0 and s_hot["kl_robust"] < 0.05
    ev = evaluate_style([sim], exp, {}, sampling_A=0.2)
    assert list(ev.rows) == ["noise-free", "gaussian", "physics"]
    # noise-added images look more experimental than the clean simulation
    assert ev.rows["physics"]["kl"] < ev.rows["noise-free"]["kl"]
    assert ev.rows["gaussian"]["kl"] < ev.rows["noise-free"]["kl"]
    assert ev.rows["noise-free"]["mean_A"] == 0.0
    assert ev.parameters["retention_smooth_px"] == pytest.approx(1.5)  # 0.3 Å at 0.2 Å/px
    text = ev.table()
    assert "physics" in text and "KL" in text

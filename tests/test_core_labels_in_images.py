"""Label symmetry seen in simulated images: D ≡ −D and D ≡ D + a look the same, others don't."""

import numpy as np
import pytest

from stackview.analysis.compare import ncc, registered_ncc
from stackview.core.labels import SlipLabels
from stackview.materials import build_stack, build_twisted, get_material
from stackview.simulation import PRESETS, simulate

FOV = (30.0, 30.0)


def _image(material, slip, sampling=0.15, preset="ReS2-300kV"):
    atoms = build_stack(material, [slip], fov_A=FOV, margin_A=10)
    return simulate(atoms, PRESETS[preset], sampling_A=sampling, fov_A=FOV).image


@pytest.mark.parametrize("name, preset", [("ReS2", "ReS2-300kV"), ("MoS2", "MoS2-60kV")])
def test_opposite_slips_give_the_same_image(name, preset):
    m = get_material(name)
    d = (0.9, 0.6) if name == "MoS2" else (1.0, 1.5)
    img = _image(m, d, preset=preset)
    img_neg = _image(m, (-d[0], -d[1]), preset=preset)
    img_trans = _image(m, (d[0] + m.a_A, d[1] - m.b_A), preset=preset)
    assert SlipLabels(m).distance(d, (-d[0], -d[1])) == pytest.approx(0, abs=1e-9)
    assert registered_ncc(img, img_neg) >= 0.99
    assert ncc(img, img_trans) >= 0.9999  # same structure, no shift needed
    # an inequivalent slip does not match, even after registration
    other = (d[0] + 0.8, d[1] - 0.5)
    assert SlipLabels(m).distance(d, other) > 0.5
    assert registered_ncc(img, _image(m, other, preset=preset)) < 0.95


def test_twist_theta_and_60_minus_theta_differ_in_real_space():
    fov = (40.0, 40.0)
    imgs = {}
    for theta in (20.0, 40.0):
        atoms = build_twisted("MoS2", theta, fov_A=fov, margin_A=10)
        imgs[theta] = simulate(atoms, PRESETS["MoS2-60kV"], sampling_A=0.2, fov_A=fov).image
    assert registered_ncc(imgs[20.0], imgs[40.0]) < 0.95
    # ... while their FFT amplitude rings are nearly identical (paper Fig. 5c)
    def ring_profile(img):
        f = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean())))
        c = np.array(f.shape) // 2
        yy, xx = np.indices(f.shape)
        r = np.hypot(yy - c[0], xx - c[1]).astype(int)
        return np.bincount(r.ravel(), f.ravel()) / np.bincount(r.ravel())
    p20, p40 = ring_profile(imgs[20.0]), ring_profile(imgs[40.0])
    assert ncc(p20[5:80], p40[5:80]) > 0.95

"""The realistic corpus's truth can be trusted: its degradation maps a lattice exactly as the
manifest says (``benchmarks/realistic_corpus.py``)."""

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "realistic_corpus.py"
_spec = importlib.util.spec_from_file_location("realistic_corpus", _PATH)
rc = importlib.util.module_from_spec(_spec)
sys.modules["realistic_corpus"] = rc  # dataclasses look their module up while being built
_spec.loader.exec_module(rc)


def _hex_reciprocal_nm(period_nm: float, angle_deg: float = 7.0) -> np.ndarray:
    """Three reciprocal vectors (cycles/nm) of a hexagonal lattice with the given row period."""
    k = 1.0 / period_nm
    return np.array([[k * math.cos(math.radians(angle_deg + 60 * n)),
                      k * math.sin(math.radians(angle_deg + 60 * n))] for n in range(3)])


def _fine_image(fn, geometry, sampling_nm):
    """``fn(x, y)`` (nm, from the field centre) sampled on a grid that covers the scan, with the
    pixel convention :func:`rc.scan_image` documents."""
    hx, hy = geometry.half_extent_nm()
    nx, ny = math.ceil(2 * hx / sampling_nm) + 4, math.ceil(2 * hy / sampling_nm) + 4
    x = (np.arange(nx) + 0.5) * sampling_nm - nx * sampling_nm / 2
    y = (np.arange(ny) + 0.5) * sampling_nm - ny * sampling_nm / 2
    return fn(x[None, :], y[:, None])


def test_scan_follows_the_documented_map_exactly():
    """Every acquired pixel shows the stack at the position the Geometry docstring's formula
    gives — rotation, mirror, scan affine, linear + quadratic drift and row jitter together —
    computed here independently, row by row."""
    g_nm = _hex_reciprocal_nm(0.35)

    def fn(x, y):
        return sum(np.cos(2 * np.pi * (g[0] * x + g[1] * y) + ph)
                   for g, ph in zip(g_nm, (0.3, 1.1, -0.7), strict=True))

    geom = rc.Geometry(shape_acquired=(90, 110), shape_final=(90, 110), pixel_nm=0.03,
                       scan=(1.015, 0.985, 0.012), drift_linear=(0.004, -0.003),
                       drift_quadratic=(0.003, -0.002), jitter_rms_px=0.25, jitter_seed=7,
                       rotation_deg=33.0, mirror=True)
    fine_nm = 0.01
    image = rc.scan_image(_fine_image(fn, geom, fine_nm), fine_nm, geom)

    ny, nx = geom.shape_acquired
    s, height = geom.pixel_nm, ny * geom.pixel_nm
    jitter = np.random.default_rng(7).normal(0, 0.25, ny)
    t = math.radians(-33.0)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    sample = np.diag([1.0, -1.0]) @ rot
    expected = np.empty((ny, nx))
    for i in range(ny):
        v = i - (ny - 1) / 2
        u = np.arange(nx) - (nx - 1) / 2
        bend = (v / ny) ** 2 - 1 / 12
        qx = s * (1.015 * u + (0.012 + 0.004) * v + jitter[i]) + height * 0.003 * bend
        qy = s * (0.985 - 0.003) * v + height * -0.002 * bend + 0 * u
        p = sample @ np.vstack([qx, qy])
        expected[i] = fn(p[0], p[1])
    # cubic-spline interpolation of a lattice sampled ~35 times per period: error << 1 %
    assert np.max(np.abs(image - expected)) < 5e-3 * np.ptp(expected)
    # and the jitter matters: without it the same comparison fails by far
    still = rc.scan_image(_fine_image(fn, geom, fine_nm), fine_nm,
                          dataclasses.replace(geom, jitter_rms_px=0.0))
    assert np.max(np.abs(still - expected)) > 0.1 * np.ptp(expected)


def _peak(image: np.ndarray, k0: np.ndarray) -> np.ndarray:
    """Sub-pixel frequency (cycles/px, (kx, ky)) of the spectral peak near ``k0``."""
    ny, nx = image.shape
    win = np.outer(np.hanning(ny), np.hanning(nx))
    img = (image - image.mean()) * win
    xs, ys = np.arange(nx), np.arange(ny)

    def neg_power(k):
        # the DTFT is separable: rows against exp(-i kx x), then columns against exp(-i ky y)
        px, py = 2 * np.pi * k[0] * xs, 2 * np.pi * k[1] * ys
        row_c, row_s = img @ np.cos(px), img @ np.sin(px)
        re = np.cos(py) @ row_c - np.sin(py) @ row_s
        im = np.cos(py) @ row_s + np.sin(py) @ row_c
        return -(re * re + im * im)

    d = 0.25 / max(nx, ny)  # the coarse peak is within a quarter of a DFT bin
    simplex = np.asarray(k0) + np.array([[0.0, 0.0], [d, 0.0], [0.0, d]])
    res = optimize.minimize(neg_power, k0, method="Nelder-Mead",
                            options={"initial_simplex": simplex, "xatol": 1e-7,
                                     "fatol": 1e-12, "maxiter": 300})
    return res.x


def _coarse_peaks(image: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` strongest spectral peaks of the upper half plane (cycles/px), from a padded FFT."""
    size = 1024
    win = np.outer(np.hanning(image.shape[0]), np.hanning(image.shape[1]))
    f = np.abs(np.fft.fft2((image - image.mean()) * win, s=(size, size))) ** 2
    f = np.fft.fftshift(f)
    c = size // 2
    f[c - 8:c + 9, c - 8:c + 9] = 0  # background
    f[:c] = 0  # keep one of each +-k pair
    out = []
    for _ in range(n):
        iy, ix = np.unravel_index(np.argmax(f), f.shape)
        out.append(((ix - c) / size, (iy - c) / size))
        f[max(iy - 12, 0):iy + 13, max(ix - 12, 0):ix + 13] = 0
    return np.array(out)


def test_measured_lattice_of_an_upsampled_distorted_scan_matches_the_manifest():
    """A known affine in: the FFT of the exported (scanned + upsampled) image shows the lattice
    at ``final_to_nm`` within 0.1 %, and its cell area gives the manifest's mean pixel size."""
    g_nm = _hex_reciprocal_nm(0.28, angle_deg=11.0)

    def fn(x, y):
        return sum(np.cos(2 * np.pi * (g[0] * x + g[1] * y)) for g in g_nm)

    geom = rc.Geometry(shape_acquired=(150, 160), shape_final=(270, 288), pixel_nm=0.018,
                       scan=(1.02, 0.982, -0.015), drift_linear=(0.003, 0.004),
                       rotation_deg=-71.0, mirror=False)
    fine_nm = 0.006
    acquired = rc.scan_image(_fine_image(fn, geom, fine_nm), fine_nm, geom)
    final = rc.upsample_image(acquired, geom)
    assert final.shape == geom.shape_final

    # a plane wave exp(2 pi i g.p) seen through p = L u + c has frequency L^T g in the file
    predicted = g_nm @ geom.final_to_nm()
    measured = np.array([_peak(final, k) for k in _coarse_peaks(final, 3)])
    for k in measured:
        d = np.min(np.minimum(np.linalg.norm(predicted - k, axis=1),
                              np.linalg.norm(predicted + k, axis=1)))
        assert d < 1e-3 * np.linalg.norm(k)
    # the cell area in px of the measured reciprocal pair against the true one in nm²
    g1, g2 = measured[0], measured[1]
    area_px = 1 / abs(g1[0] * g2[1] - g1[1] * g2[0])
    area_nm = 1 / abs(np.linalg.det(g_nm[:2]))
    assert math.sqrt(area_nm / area_px) == pytest.approx(geom.mean_pixel_size_nm(), rel=1e-3)
    assert geom.mean_pixel_size_nm() == pytest.approx(
        0.018 * (160 / 288) * math.sqrt(1.02 * (0.982 + 0.004)), rel=1e-9)


def test_a_corpus_image_shows_the_stack_lattice_where_the_manifest_says():
    """End to end with the simulator: a small ReS2 corpus image (rotated, mirrored, distorted,
    noisy, 8-bit) has its strongest spectral peaks on the reciprocal lattice that the manifest's
    ``lattice_a_px`` / ``lattice_b_px`` imply."""
    from stackview.models.card import read_card
    from stackview.models.registry import find_model

    card = read_card(find_model("ReS2_slip_bilayer"))
    choice = rc.draw_image(card, np.random.default_rng(3))
    choice.update(format="png", rgb=False, dose_counts_per_px=200.0, background_gradient=0.1)
    choice["geometry"] = rc.Geometry(shape_acquired=(300, 300), shape_final=(300, 300),
                                     pixel_nm=0.011, scan=(1.012, 0.99, 0.008),
                                     drift_linear=(0.002, -0.002),
                                     drift_quadratic=(0.001, 0.0), jitter_rms_px=0.05,
                                     jitter_seed=1, rotation_deg=127.0, mirror=True)
    pixels = rc.make_image(card, choice)
    truth = rc.truth_entry(card, choice, "x.png", [0, 0, 0])
    assert pixels.dtype == np.uint8 and pixels.shape == (300, 300)
    assert truth["pixel_size_nm"] == pytest.approx(
        0.011 * math.sqrt(1.012 * 0.988), rel=1e-9)
    real = np.array([truth["lattice_a_px"], truth["lattice_b_px"]])
    recip = np.linalg.inv(real).T  # rows: reciprocal basis (cycles/px)
    img = pixels.astype(float)
    for k0 in _coarse_peaks(img, 6):
        k = _peak(img, k0)
        hk = np.linalg.solve(recip.T, k)
        # on the lattice: integer indices within 0.01 (measured: <= 0.007 here; leaving out the
        # 0.8 % shear from the truth puts them 0.018 off)
        assert np.all(np.abs(hk - np.round(hk)) < 0.01), (k, hk)
        assert np.any(np.round(hk) != 0)
    # the mirror makes the image's (a, b) left-handed
    assert np.linalg.det(real) < 0


def test_family_models_draw_both_families_and_a_wrong_family_is_wrong():
    """A hexagonal-TMD slip model's corpus holds both families (a 0/1 third label), and a
    reading of the other family is wrong however close its slip is (the distance is infinite)."""
    from stackview.models import load_bundle
    from stackview.models.registry import bundled_dir

    bundle = load_bundle(bundled_dir() / "MoS2_slip_bilayer")
    rng = np.random.default_rng(5)
    families = [rc.draw_image(bundle.card, rng)["labels"][2] for _ in range(40)]
    assert set(families) == {0.0, 1.0} and 10 <= sum(families) <= 30
    row = {"status": "ok", "task": "slip", "pixel_ratio": 1.0,
           "true_labels": [1.0, 0.5, 1.0], "measured_labels": [1.0, 0.5, 0.0]}
    scored = rc.score_row(dict(row), bundle.label_space)
    assert not scored["family_ok"] and not scored["label_ok"] and not scored["right"]
    scored = rc.score_row({**row, "measured_labels": [1.02, 0.5, 1.0]}, bundle.label_space)
    assert scored["family_ok"] and scored["label_ok"] and scored["right"]

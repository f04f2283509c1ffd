"""Tests of stackview.simulation: optics, cross-sections, the incoherent simulator, interface.

abTEM-based checks (probe equivalence, multislice) are in test_simulation_abtem.py.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from stackview.simulation import (
    PRESETS,
    CoverageWarning,
    Optics,
    SimulatedImage,
    adf_cross_section_A2,
    electron_wavelength_A,
    image_shape,
    pixel_centers_A,
    render_incoherent,
    render_incoherent_batch,
    simulate,
)
from stackview.simulation.cross_sections import adf_cross_sections, electron_scattering_factor_A
from stackview.simulation.incoherent import get_plan
from stackview.simulation.multislice import fourier_resample_matrix
from stackview.simulation.probe import probe_wave_fourier, source_transfer

RES2 = PRESETS["ReS2-300kV"]
MOS2 = PRESETS["MoS2-60kV"]


# ----------------------------------------------------------------------------- optics


def test_presets_match_the_paper():
    assert RES2.to_dict() == {
        "energy_kV": 300.0,
        "convergence_mrad": 21.3,
        "adf_inner_mrad": 39.0,
        "adf_outer_mrad": 200.0,
        "defocus_A": 40.0,
        "Cs_A": 0.0,
        "source_size_A": 0.65,
    }
    assert (MOS2.energy_kV, MOS2.convergence_mrad) == (60.0, 31.5)
    assert (MOS2.adf_inner_mrad, MOS2.adf_outer_mrad) == (49.5, 198.0)


def test_wavelength():
    assert electron_wavelength_A(300) == pytest.approx(0.019687, rel=1e-4)
    assert electron_wavelength_A(60) == pytest.approx(0.048661, rel=1e-4)
    assert electron_wavelength_A(200) == pytest.approx(0.025079, rel=1e-4)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"energy_kV": 0.0}, "energy_kV"),
        ({"energy_kV": -60}, "energy_kV"),
        ({"convergence_mrad": 0}, "convergence_mrad"),
        ({"adf_inner_mrad": -1}, "adf_inner_mrad"),
        ({"adf_outer_mrad": 30.0}, "larger than"),
        ({"source_size_A": -0.1}, "source_size_A"),
        ({"defocus_A": float("nan")}, "finite"),
        ({"Cs_A": "a lot"}, "number"),
        ({"energy_kV": True}, "number"),
    ],
)
def test_optics_validation(changes, words):
    with pytest.raises(ValueError, match=words) as info:
        RES2.replace(**changes)
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message


def test_optics_dict_round_trip_and_errors():
    for optics in PRESETS.values():
        assert Optics.from_dict(json.loads(json.dumps(optics.to_dict()))) == optics
    with pytest.raises(ValueError, match="Unknown optics field"):
        Optics.from_dict({**RES2.to_dict(), "voltage": 3})
    with pytest.raises(ValueError, match="Missing optics field"):
        Optics.from_dict({"energy_kV": 300})
    o = Optics(80, 30, 60, 200)  # ints are accepted and stored as floats
    assert isinstance(o.energy_kV, float) and o.defocus_A == 0.0
    assert hash(o) == hash(Optics(80.0, 30.0, 60.0, 200.0))


# ----------------------------------------------------------------------- cross-sections


def test_scattering_factor_tables_agree_and_are_sane():
    k = np.array([0.0, 0.5, 1.0, 2.0])
    for z, f0 in [(6, 2.51), (16, 5.2), (75, 12.3)]:
        kirk = electron_scattering_factor_A(z, k, "kirkland")
        lob = electron_scattering_factor_A(z, k, "lobato")
        assert kirk[0] == pytest.approx(f0, rel=0.03)
        np.testing.assert_allclose(kirk[1:], lob[1:], rtol=0.02)
        assert np.all(np.diff(kirk) < 0)


def test_heavier_atoms_scatter_more_in_the_expected_ratio():
    s_S, s_Mo, s_Re = (adf_cross_section_A2(z, RES2) for z in (16, 42, 75))
    assert s_S < s_Mo < s_Re
    # ADF Z-contrast exponent between 1.5 and 2 for these detectors
    for hi, z_hi in [(s_Re, 75), (s_Mo, 42)]:
        exponent = np.log(hi / s_S) / np.log(z_hi / 16)
        assert 1.5 < exponent < 2.0
    # cached, vectorised, and consistent
    np.testing.assert_allclose(adf_cross_sections(np.array([16, 75, 16]), RES2), [s_S, s_Re, s_S])


def test_cross_section_grows_with_detector_range():
    wide = RES2.replace(adf_inner_mrad=20.0)
    assert adf_cross_section_A2(75, wide) > adf_cross_section_A2(75, RES2)


# ------------------------------------------------------------------------ incoherent


def _single_atom(x, y, z=75, optics=RES2, sampling=0.1, shape=(120, 120), **kw):
    return render_incoherent(np.array([[x, y]]), np.array([z]), optics, sampling, shape, **kw)


def _centroid(image, sampling, origin=(0.0, 0.0)):
    x, y = pixel_centers_A(image.shape, sampling, origin)
    w = image.astype(np.float64)
    return (w.sum(0) @ x) / w.sum(), (w.sum(1) @ y) / w.sum()


def test_image_shape_and_pixel_convention():
    assert image_shape((3.0, 2.0), 0.1) == (20, 30)
    assert image_shape(2.0, 0.1) == (20, 20)
    x, y = pixel_centers_A((20, 30), 0.1, (1.0, -2.0))
    assert x[0] == pytest.approx(1.05) and y[-1] == pytest.approx(-2.0 + 1.95)
    # an atom exactly on the centre of pixel (i, j) = (7, 21) peaks there
    origin = (1.0, -2.0)
    img = render_incoherent(
        np.array([[x[21], y[7]]]), np.array([42]), RES2, 0.1, (20, 30), origin_A=origin
    )
    assert img.shape == (20, 30) and img.dtype == np.float32
    assert np.unravel_index(np.argmax(img), img.shape) == (7, 21)


def test_single_atom_peak_and_centroid_are_subpixel_accurate():
    s = 0.1
    c = 6.0
    x0, y0 = _centroid(_single_atom(c + 0.013, c - 0.021), s)
    assert x0 == pytest.approx(c + 0.013, abs=0.005)
    assert y0 == pytest.approx(c - 0.021, abs=0.005)
    # moving the atom by 0.03 Å moves the centroid by 0.03 Å
    for dx, dy in [(0.03, 0.0), (0.0, 0.03), (0.03, -0.03)]:
        x1, y1 = _centroid(_single_atom(c + 0.013 + dx, c - 0.021 + dy), s)
        assert x1 - x0 == pytest.approx(dx, abs=0.005)
        assert y1 - y0 == pytest.approx(dy, abs=0.005)
    # the peak (Gaussian fit to the 3 x 3 maximum) sits at the atom, within 5 pm
    for t in np.linspace(0, 0.9, 7):
        img = _single_atom(c + t * s, c + 0.37 * t * s).astype(np.float64)
        i, j = np.unravel_index(np.argmax(img), img.shape)
        ly = np.log(img[i - 1 : i + 2, j])
        lx = np.log(img[i, j - 1 : j + 2])
        dj = 0.5 * (lx[0] - lx[2]) / (lx[0] - 2 * lx[1] + lx[2])
        di = 0.5 * (ly[0] - ly[2]) / (ly[0] - 2 * ly[1] + ly[2])
        assert (j + 0.5 + dj) * s == pytest.approx(c + t * s, abs=0.005)
        assert (i + 0.5 + di) * s == pytest.approx(c + 0.37 * t * s, abs=0.005)


def _exact_single_atom(optics, sampling, shape, x, y, z):
    """Reference: the probe on the plan's own padded grid, shifted by an exact Fourier phase."""
    plan = get_plan(optics, sampling, shape)
    assert plan.oversample == 1
    ny, nx = plan.padded_shape
    s = sampling
    intensity = np.abs(np.fft.ifft2(probe_wave_fourier(optics, (ny, nx), s))) ** 2
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    k = np.fft.rfft2(intensity) / s**2 * source_transfer(optics.source_size_A, fy / s, fx / s)
    u = x / s - 0.5 + plan.pad_px
    v = y / s - 0.5 + plan.pad_px
    img = np.fft.irfft2(k * np.exp(-2j * np.pi * (fx * u + fy * v)), s=(ny, nx))
    p = plan.pad_px
    return img[p : p + shape[0], p : p + shape[1]] * adf_cross_section_A2(z, optics)


@pytest.mark.parametrize("optics, sampling", [(RES2, 0.1), (MOS2, 0.06), (MOS2, 0.2)])
def test_spreading_matches_exact_fourier_shift(optics, sampling):
    shape = (64, 64)
    for t in (0.0, 0.25, 0.5, 0.8):
        x, y = (30 + t) * sampling, (33 + 0.6 * t) * sampling
        img = _single_atom(x, y, 75, optics, sampling, shape)
        ref = _exact_single_atom(optics, sampling, shape, x, y, 75)
        assert np.abs(img - ref).max() < 1e-3 * ref.max()
    # bilinear spreading is the less accurate option
    lin = _single_atom(x, y, 75, optics, sampling, shape, spread="linear")
    assert np.abs(lin - ref).max() < 2e-2 * ref.max()


def test_coarse_sampling_is_point_sampled_from_an_oversampled_grid():
    # 0.3 Å is coarser than 0.6 x lambda/(4 alpha) = 0.14 Å at 300 kV: internal grid 3x finer
    rng = np.random.default_rng(0)
    pos = rng.uniform(-6, 18, size=(300, 2))
    num = rng.choice([16, 75], size=300)
    coarse = render_incoherent(pos, num, RES2, 0.3, (40, 40))
    fine = render_incoherent(pos, num, RES2, 0.1, (120, 120))
    assert get_plan(RES2, 0.3, (40, 40)).oversample == 3
    # coarse pixel centres (j + 0.5) 0.3 = fine pixel centres (3 j + 1 + 0.5) 0.1
    np.testing.assert_allclose(coarse, fine[1::3, 1::3], atol=5e-3 * fine.max())


def test_heavier_atom_brighter_in_ratio_of_cross_sections():
    pos = np.array([[4.0, 6.0], [12.0, 6.0]])
    img = render_incoherent(pos, np.array([75, 16]), RES2, 0.1, (120, 160))
    re_peak = img[:, :80].max()
    s_peak = img[:, 80:].max()
    expected = adf_cross_section_A2(75, RES2) / adf_cross_section_A2(16, RES2)
    assert re_peak / s_peak == pytest.approx(expected, rel=0.01)
    assert re_peak / s_peak > (75 / 16) ** 1.5


def test_image_integral_is_sum_of_cross_sections():
    # the probe is normalised to 1/Å^2: an isolated atom integrates to its cross-section
    img = _single_atom(6.0, 6.0, 42, MOS2, 0.1, (240, 240), tail_A=0.0).astype(np.float64)
    # (field of view 24 Å: the Airy tail beyond 12 Å carries < 1 % of the probe)
    assert img.sum() * 0.1**2 == pytest.approx(adf_cross_section_A2(42, MOS2), rel=0.02)


def test_no_wraparound_across_the_field_of_view():
    s = 0.1
    shape = (100, 100)  # 10 x 10 Å
    cases = [  # atom on an edge, and the opposite edge's 5 pixel strip
        ((0.0, 5.0), (slice(None), slice(-5, None))),
        ((10.0, 5.0), (slice(None), slice(0, 5))),
        ((5.0, 0.0), (slice(-5, None), slice(None))),
        ((5.0, 10.0), (slice(0, 5), slice(None))),
        ((-0.2, -0.2), (slice(-5, None), slice(-5, None))),
    ]
    for (x, y), far in cases:
        img = _single_atom(x, y, 75, RES2, s, shape)
        assert img.max() > 0.1 * _single_atom(5.0, 5.0, 75, RES2, s, shape).max()
        # a 10 Å distant probe tail is ~1e-5 of the peak; wrapping would put the peak there
        assert img[far].max() < 1e-3 * img.max()
    # an atom outside the field of view by more than the tail contributes nothing
    plan = get_plan(RES2, s, shape)
    img = _single_atom(-plan.tail_A - 1.0, 5.0, 75, RES2, s, shape)
    assert np.all(img == 0)


def test_batch_equals_single():
    rng = np.random.default_rng(1)
    items = []
    for _ in range(5):
        n = rng.integers(50, 150)
        items.append((rng.uniform(-8, 28, size=(n, 2)), rng.choice([16, 42, 75], size=n)))
    calls = []
    batch = render_incoherent_batch(
        items, RES2, 0.1, (200, 200), chunk_size=2, progress=lambda d, t: calls.append((d, t))
    )
    assert batch.shape == (5, 200, 200) and batch.dtype == np.float32
    for b, (pos, num) in enumerate(items):
        single = render_incoherent(pos, num, RES2, 0.1, (200, 200))
        np.testing.assert_allclose(batch[b], single, rtol=0, atol=1e-6 * single.max())
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_translation_equivariance():
    rng = np.random.default_rng(2)
    pos = rng.uniform(-6, 16, size=(200, 2))
    num = rng.choice([16, 75], size=200)
    a = render_incoherent(pos, num, RES2, 0.1, (100, 100), origin_A=(0.0, 0.0))
    shift = np.array([3.7, -1.3])
    b = render_incoherent(pos + shift, num, RES2, 0.1, (100, 100), origin_A=tuple(shift))
    np.testing.assert_allclose(a, b, atol=1e-5 * a.max())
    # shifting the atoms by whole pixels shifts the image by whole pixels (up to the atoms
    # that cross the tail radius, which are dropped: ~1e-4 of the maximum)
    c = render_incoherent(pos + [0.3, 0.5], num, RES2, 0.1, (100, 100))
    np.testing.assert_allclose(c[5:, 3:], a[:-5, :-3], atol=3e-4 * a.max())


# ------------------------------------------------------------------------ interface


def _mos2_bilayer(fov=12.0, margin=10.0, slip=(0.0, 0.0)):
    from stackview.materials import build_stack

    return build_stack("MoS2", slips_A=[slip], fov_A=(fov, fov), margin_A=margin)


def test_simulate_returns_documented_image_and_json_metadata():
    atoms = _mos2_bilayer(fov=12.0)
    calls = []
    result = simulate(atoms, MOS2, 0.1, (12.0, 8.0), progress=lambda d, t: calls.append((d, t)))
    assert isinstance(result, SimulatedImage)
    assert result.image.shape == (80, 120) and result.image.dtype == np.float32
    assert result.fov_A == pytest.approx((12.0, 8.0))
    assert result.method == "incoherent" and result.optics == MOS2
    assert calls[-1] == (1, 1)
    meta = json.loads(json.dumps(result.metadata))
    assert meta["sampling_A"] == 0.1 and meta["shape"] == [80, 120]
    assert meta["optics"] == MOS2.to_dict()
    assert meta["structure_info"]["stackview"]["material"] == "MoS2"
    assert "kirkland" in meta["method_details"]["cross_sections"]
    assert 0 < result.image.min() < result.image.max() < 1


def test_simulate_matches_the_array_renderer_and_twisted_stacks_work():
    from stackview.materials import build_twisted

    atoms = build_twisted("MoS2", 7.0, fov_A=(16.0, 16.0), margin_A=10.0)
    result = simulate(atoms, MOS2, 0.12, 16.0, origin_A=(0.0, 0.0))
    direct = render_incoherent(atoms.positions[:, :2], atoms.numbers, MOS2, 0.12, result.shape)
    np.testing.assert_array_equal(result.image, direct)


def test_slip_moves_the_image_motif():
    a = simulate(_mos2_bilayer(slip=(0.0, 0.0)), MOS2, 0.1, 12.0).image
    b = simulate(_mos2_bilayer(slip=(1.0, 0.0)), MOS2, 0.1, 12.0).image
    ncc = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert ncc < 0.95


def test_simulate_warns_when_atoms_do_not_cover_the_probe_tail():
    atoms = _mos2_bilayer(fov=12.0, margin=1.0)
    with pytest.warns(CoverageWarning, match="probe tail"):
        simulate(atoms, MOS2, 0.1, 12.0)
    atoms = _mos2_bilayer(fov=12.0, margin=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoverageWarning)
        simulate(atoms, MOS2, 0.1, 12.0)


def test_simulate_rejects_bad_input():
    atoms = _mos2_bilayer()
    with pytest.raises(ValueError, match="method"):
        simulate(atoms, MOS2, 0.1, 12.0, method="holography")
    with pytest.raises(ValueError, match="sampling_A"):
        simulate(atoms, MOS2, 0.0, 12.0)
    with pytest.raises(ValueError, match="smaller than one pixel"):
        simulate(atoms, MOS2, 0.1, 0.01)
    with pytest.raises(ValueError, match="Unknown option"):
        simulate(atoms, MOS2, 0.1, 12.0, frobnicate=True)
    with pytest.raises(ValueError, match="Optics"):
        simulate(atoms, MOS2.to_dict(), 0.1, 12.0)
    with pytest.raises(ValueError, match="spread"):
        simulate(atoms, MOS2, 0.1, 12.0, spread="gaussian")


def test_fourier_resample_matrix_interpolates_band_limited_data():
    n = 40
    t = np.arange(n)
    w = fourier_resample_matrix(n, t.astype(float))
    f = np.cos(2 * np.pi * 0.13 * t + 0.4) + 0.5 * np.sin(2 * np.pi * 0.05 * t)
    np.testing.assert_allclose(w @ f, f, atol=1e-10)  # passes through the samples
    mid = np.arange(8, 32) + 0.37
    g = np.cos(2 * np.pi * 0.13 * mid + 0.4) + 0.5 * np.sin(2 * np.pi * 0.05 * mid)
    np.testing.assert_allclose(fourier_resample_matrix(n, mid) @ f, g, atol=5e-3)


def test_import_is_light():
    code = (
        "import sys, time; t = time.process_time(); import stackview.simulation; "
        "dt = time.process_time() - t; "
        "bad = [m for m in ('abtem', 'torch', 'PySide6', 'numba') if m in sys.modules]; "
        "print(dt, bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    dt, bad = out.stdout.split(" ", 1)
    assert bad.strip() == "[]"
    # CPU time, not wall time: a loaded machine stretches the wall clock, not the work done
    assert float(dt) < 1.0  # ~0.3 s here


def test_custom_optics_text_round_trips_and_bad_text_is_one_sentence():
    from stackview.errors import UsageError
    from stackview.simulation import PRESETS, Optics, optics_text, resolve_optics

    assert resolve_optics("MoS2-60kV") is PRESETS["MoS2-60kV"]
    o = resolve_optics("kv=200, convergence=25, adf=45-180, cs=1e7")
    assert (o.energy_kV, o.convergence_mrad, o.adf_inner_mrad, o.adf_outer_mrad, o.Cs_A) == (
        200.0, 25.0, 45.0, 180.0, 1e7)
    assert (o.defocus_A, o.source_size_A) == (40.0, 0.65)  # the presets' defaults
    assert resolve_optics(optics_text(o)) == o
    assert optics_text(Optics(80, 30, 50, 200, defocus_A=40, source_size_A=0.65)) == (
        "kv=80,convergence=30,adf=50-200")
    for bad, words in (("TitanX", "unknown optics 'TitanX'"), ("kv=200,adf=45", "cannot read"),
                       ("kv=200,convergence=25,adf=180-45", "cannot read"),
                       ("kv=200,convergence=25,adf=45-180,tilt=3", "unknown optics key 'tilt'")):
        with pytest.raises(UsageError, match=words):
            resolve_optics(bad)

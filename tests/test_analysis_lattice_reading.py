"""The real-file front end: scale, orientation, face and scan distortion read by hypothesis
search and re-simulation; one-window-wide images; the unreliable flag."""

import numpy as np
import pytest
from lattice_images import degraded_image, true_pixel_size_nm

from stackview.analysis.analyze import analyze_image, optics_for_card
from stackview.analysis.lattice_candidates import lattice_hypotheses
from stackview.analysis.lattice_peaks import measured_lattice
from stackview.analysis.lattice_reading import read_lattice
from stackview.analysis.lattice_scorers import ResimulationScorer
from stackview.analysis.scan_distortion import ScanDistortion
from stackview.models.bundle import load_bundle


@pytest.fixture(scope="module")
def res2_bundle():
    return load_bundle("ReS2_slip_bilayer")


def test_scale_ambiguity_resolved_by_resimulation(res2_bundle):
    """An 8-bit, rotated, slightly distorted 3 nm ReS2 image that the peak-geometry
    calibration before this front end read with twice the pixel size (+101 %, commit bee0aa5):
    a reading at another scale fits the lattice's shape as well as the right one, and only
    the re-simulation tells them apart."""
    d = ((0.993, 0.004), (0.0, 1.0))
    img = degraded_image(slip_A=(2.87, 2.56), out_px=420, pixel_nm=0.00727,
                         rotation_deg=57.0, distortion=d, dose=25, seed=5)
    truth = true_pixel_size_nm(0.00727, d)
    reading = read_lattice(img, "ReS2", ResimulationScorer(img, res2_bundle,
                                                           optics_for_card(res2_bundle.card)))
    assert reading.pixel_size_nm == pytest.approx(truth, rel=0.01)
    assert reading.reliable and reading.confidence > 0.8
    wrong = [h for h in reading.hypotheses if abs(h.pixel_size_nm / truth - 1) > 0.3]
    assert wrong and min(h.anisotropy for h in wrong) <= reading.best.anisotropy + 0.005
    assert max(h.score for h in wrong) < reading.best.score - 0.3


def test_scan_distortion_recovered_within_0p2_percent():
    """A known affine scan distortion (1.5 % fast/slow scale, 1 % shear) is measured from the
    lattice within 0.2 %, and an undistorted image reads as undistorted."""
    d = ((1.015, 0.01), (0.0, 1 / 1.015))
    img = degraded_image(out_px=1000, pixel_nm=0.008, rotation_deg=23.0, distortion=d,
                         dose=30)
    lattice, _, peaks = measured_lattice(img, with_peaks=True)
    hyps = lattice_hypotheses(lattice, "ReS2", peaks=peaks)
    right = [h for h in hyps if abs(h.pixel_size_nm / 0.008 - 1) < 0.01]
    assert right
    best = min(right, key=lambda h: abs(h.distortion.scale_x - 1.015) + abs(h.distortion.shear
                                                                           - 0.01))
    got = best.distortion
    assert got.scale_x == pytest.approx(1.015, abs=0.002)
    assert got.scale_y == pytest.approx(1 / 1.015, abs=0.002)
    assert got.shear == pytest.approx(0.01, abs=0.002)
    assert best.pixel_size_nm == pytest.approx(0.008, rel=0.002)
    flat = ScanDistortion.from_matrix(np.eye(2) * 3.0)
    assert flat.magnitude < 1e-9


def test_distorted_image_read_right_with_correction_and_worse_without(res2_bundle, tmp_path):
    """With 2 % scan distortion the corrected analysis reads the slip within 0.1 Å and
    reports the distortion; --no-undistort reads the windows with a worse re-simulation."""
    d = ((1.02, 0.015), (0.0, 1 / 1.02))
    img = degraded_image(slip_A=(1.2, 2.4), out_px=420, pixel_nm=0.0075, rotation_deg=61.0,
                         distortion=d, dose=30)
    on = analyze_image(img, bundle=res2_bundle, stride_nm=1.0, n_views=1)
    off = analyze_image(img, bundle=res2_bundle, stride_nm=1.0, n_views=1, undistort=False)
    s = on.summary()
    assert s["scan_distortion"]["corrected"] and not off.summary()["scan_distortion"]["corrected"]
    assert s["scan_distortion"]["scale_x"] == pytest.approx(1.02, abs=0.003)
    err = res2_bundle.label_space.distance([s["Da_A_median"], s["Db_A_median"]], [1.2, 2.4])
    assert float(err) < 0.1
    assert s["reliable"] and s["resimulation_ncc_median"] > off.summary()[
        "resimulation_ncc_median"]


def test_one_window_wide_image_is_analysed(res2_bundle):
    """A rotated image only 1.1 windows wide (the rotated window's diagonal does not fit) is
    analysed, the corners filled by lattice translation, and read right."""
    img = degraded_image(slip_A=(2.0, 1.0), out_px=300, pixel_nm=0.0075, rotation_deg=40.0,
                         dose=40)
    assert 300 * 0.0075 < 1.15 * res2_bundle.card.patch_nm
    res = analyze_image(img, bundle=res2_bundle, stride_nm=0.5, n_views=1)
    s = res.summary()
    assert s["n_patches"] >= 1
    assert any("one window wide" in n for n in res.notes)
    err = res2_bundle.label_space.distance([s["Da_A_median"], s["Db_A_median"]], [2.0, 1.0])
    assert float(err) < 0.1 and s["reliable"]


def test_unreliable_flag_when_the_best_reading_fits_poorly(res2_bundle):
    """Under a thick amorphous layer (noise twice the lattice's contrast) the FFT still shows
    the lattice, so a pixel size and a slip come out, but no reading re-simulates the windows:
    the result is flagged unreliable with the reason; the clean image is not."""
    from scipy import ndimage

    img = degraded_image(slip_A=(1.0, 1.0), out_px=500, pixel_nm=0.008, rotation_deg=10.0,
                         eight_bit=False)
    rng = np.random.default_rng(0)
    amorphous = ndimage.gaussian_filter(rng.normal(size=img.shape), 2.0)
    dirty = (img / img.std() + 2 * amorphous / amorphous.std()).astype(np.float32)
    bad = analyze_image(dirty, bundle=res2_bundle, stride_nm=1.0, n_views=1).summary()
    assert bad["reliable"] is False and "re-simulates the image" in bad["reliable_reason"]
    assert bad["resimulation_ncc_median"] < 0.3
    good = analyze_image(img, bundle=res2_bundle, stride_nm=1.0, n_views=1).summary()
    assert good["reliable"] is True and good["reliable_reason"] == ""
    assert good["resimulation_ncc_median"] > 0.8


def test_drift_that_changes_during_the_scan_is_measured_and_undone(res2_bundle):
    """A slow-scan drift quadratic in time (the shear changes by 5 % from the top third to the
    bottom third) is measured within 0.3 % and undone window by window: the windows then
    match their re-simulations better than with no correction."""
    n = 1000
    q = 0.05 / (2 * (2 * n / 3))  # x drift q·y² px: shear 2·q·y, 5 % apart at ±n/3
    img = degraded_image(slip_A=(1.2, 2.4), out_px=n, pixel_nm=0.008, rotation_deg=33.0,
                         dose=30, drift_px_per_row2=q)
    on = analyze_image(img, bundle=res2_bundle, stride_nm=1.0, n_views=1)
    off = analyze_image(img, bundle=res2_bundle, stride_nm=1.0, n_views=1, undistort=False)
    change = on.summary()["scan_distortion"]["change_top_to_bottom"]
    assert change["corrected"]
    assert change["shear_change"] == pytest.approx(-0.05, abs=0.003)
    assert abs(change["scale_y_change"]) < 0.003
    assert np.nanmedian(on.smap.ncc_points) > np.nanmedian(off.smap.ncc_points) + 0.01


@pytest.mark.parametrize("two_domains", [False, True])
def test_a_small_oblong_field_reads_no_scan_distortion(two_domains):
    """A 450 × 225 px MoS2 field (11 cells high) without distortion reads none (< 0.2 %): its
    FFT peaks are wider than a fixed centroid box, which read them ~1 % off (3.5 % fast/slow
    on one domain, 0.8 % shear on a 3R domain beside a 2H one)."""
    from stackview.analysis.lattice_reading import read_lattice
    from stackview.materials import build_slip_domains, build_stack, get_material
    from stackview.simulation import PRESETS, simulate

    m = get_material("MoS2")
    delta = np.array([1 / 3, 2 / 3]) * [m.a_A, m.b_A]
    fov = (72.0, 36.0)
    if two_domains:
        atoms = build_slip_domains(m, [(delta, False), (delta, True)],
                                   lambda xy: (xy[:, 0] >= 36.0).astype(int), fov_A=fov,
                                   margin_A=12, seed=0)
    else:
        atoms = build_stack(m, [tuple(delta)], fov_A=fov, margin_A=12)
    img = simulate(atoms, PRESETS["MoS2-60kV"], sampling_A=0.16, fov_A=fov).image
    img = np.random.default_rng(1).poisson(img / img.mean() * 300).astype(np.float32)
    d = read_lattice(img, m, pixel_size_nm=0.016).distortion
    assert abs(d.scale_x / d.scale_y - 1) < 0.002 and abs(d.shear) < 0.002

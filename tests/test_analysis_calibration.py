"""Pixel-size calibration (stackview.analysis.calibration): the user's, the file's or the
lattice's; automatic calibration of simulated images of known sampling and the real dm3."""

import numpy as np
import pytest
from scipy import ndimage

from stackview.analysis.calibration import calibrate, calibrate_from_lattice
from stackview.errors import UsageError
from stackview.io.readers import read_image
from stackview.materials import build_stack, get_material
from stackview.simulation import PRESETS, simulate


@pytest.mark.parametrize("material, preset, sampling_A, fov_A",
                         [("ReS2", "ReS2-300kV", 0.12, 48.0), ("ReS2", "ReS2-300kV", 0.3, 80.0),
                          ("MoS2", "MoS2-60kV", 0.1, 60.0), ("MoS2", "MoS2-60kV", 0.25, 100.0)])
def test_lattice_calibration_of_simulated_images_within_1_percent(material, preset, sampling_A,
                                                                   fov_A):
    atoms = build_stack(material, [(0.7, 0.9)], fov_A=(fov_A, fov_A), margin_A=8)
    img = simulate(atoms, PRESETS[preset], sampling_A=sampling_A, fov_A=(fov_A, fov_A)).image
    rng = np.random.default_rng(0)
    noisy = rng.poisson(np.clip(img, 0, None) / img.max() * 50).astype(np.float32)
    for image in (img, noisy):
        cal = calibrate_from_lattice(image, material)
        assert cal.source == "fft"
        assert cal.pixel_size_nm == pytest.approx(sampling_A / 10, rel=0.01)
        assert cal.confidence > 0.5


def _autocorrelation_pixel_size_nm(image: np.ndarray, a_nm: float) -> float:
    """Independent real-space estimate: the six nearest autocorrelation peaks of a hexagonal
    lattice lie at |a| from the origin."""
    img = image - ndimage.gaussian_filter(image, 20)
    f = np.fft.fft2(img)
    ac = np.fft.fftshift(np.fft.ifft2(np.abs(f) ** 2).real)
    c = np.array(ac.shape) // 2
    peaks = (ac == ndimage.maximum_filter(ac, 9)) & (ac > 0.2 * ac[c[0], c[1]])
    yx = np.argwhere(peaks) - c
    r = np.hypot(*yx.T)
    r = np.sort(r[r > 3])[:6]
    # sub-pixel: the mean of six peaks rounded to pixels is good to ~0.3 %
    return a_nm / r.mean()


def test_dm3_lattice_calibration_and_tag_warning(shared_dir):
    """The dm3's tags say 0.0127 nm/px, but its MoS2 lattice (FFT and, independently, the
    real-space autocorrelation) says ~0.0135 nm/px: the automatic calibration agrees with the
    lattice within 2 %, and reading the file with its tags warns about the disagreement."""
    path = shared_dir / "data/experimental/MoS2_monolayer_Se_implanted_60kV_temul.dm3"
    loaded = read_image(path)
    mos2 = get_material("MoS2")
    auto = calibrate_from_lattice(loaded.data, mos2)
    reference = _autocorrelation_pixel_size_nm(loaded.data, mos2.a_A / 10)
    assert auto.pixel_size_nm == pytest.approx(reference, rel=0.02)
    assert auto.confidence > 0.5
    checked = calibrate(loaded.data, "MoS2", metadata_pixel_size_nm=loaded.pixel_size_nm)
    assert checked.source == "metadata" and checked.pixel_size_nm == pytest.approx(0.0127, 1e-3)
    assert checked.disagreement == pytest.approx(
        auto.pixel_size_nm / checked.pixel_size_nm - 1, abs=1e-6)
    assert "may be off" in checked.message
    # consistent tags give no warning
    fine = calibrate(loaded.data, "MoS2", metadata_pixel_size_nm=auto.pixel_size_nm)
    assert "may be off" not in fine.message and abs(fine.disagreement) < 1e-9


def test_calibration_priority_and_validation():
    # the user's value wins over the file's; without either and without a material: none
    y, x = np.mgrid[:128, :128]
    lattice_image = (np.cos(x / 3.0) * np.cos(y / 4.0) + 2).astype(np.float32)
    user = calibrate(lattice_image, pixel_size_nm=0.01, metadata_pixel_size_nm=0.02)
    assert user.source == "user"
    assert calibrate(lattice_image, metadata_pixel_size_nm=0.02).pixel_size_nm == 0.02
    with pytest.raises(UsageError, match="out of range"):
        calibrate(lattice_image, pixel_size_nm=-1)
    with pytest.raises(UsageError, match="no pixel size"):
        calibrate(lattice_image)

import numpy as np
import pytest
import tifffile
from PIL import Image

from stackview.errors import UsageError
from stackview.io.readers import read_image
from stackview.io.tiff import read_tiff_pixel_size_nm, write_calibrated_tiff


@pytest.fixture
def lattice_image():
    y, x = np.mgrid[:128, :128]
    return (np.cos(x / 3.0) * np.cos(y / 4.0) + 2).astype(np.float32)


def test_calibrated_tiff_round_trip(tmp_path, lattice_image):
    path = tmp_path / "img.tif"
    write_calibrated_tiff(path, lattice_image, 0.0123)
    assert read_tiff_pixel_size_nm(path) == pytest.approx(0.0123, rel=1e-6)
    loaded = read_image(path)
    assert loaded.pixel_size_nm == pytest.approx(0.0123, rel=1e-6)
    assert loaded.calibration_source == "metadata"
    np.testing.assert_array_equal(loaded.data, lattice_image)
    assert not list(tmp_path.glob(".img.tif*"))  # no temporary files left behind


def test_ome_tiff_calibration(tmp_path, lattice_image):
    path = tmp_path / "ome.ome.tif"
    tifffile.imwrite(path, lattice_image, ome=True,
                     metadata={"PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "Å",
                               "PhysicalSizeY": 0.5, "PhysicalSizeYUnit": "Å"})
    assert read_image(path).pixel_size_nm == pytest.approx(0.05)


def test_png_rgb_and_stack_are_reduced_with_a_note(tmp_path, lattice_image):
    rgb = np.stack([lattice_image * 40, lattice_image * 20, lattice_image * 10], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / "c.png")
    loaded = read_image(tmp_path / "c.png")
    assert loaded.data.shape == (128, 128) and loaded.pixel_size_nm is None
    assert any("grey" in n for n in loaded.notes)
    tifffile.imwrite(tmp_path / "s.tif", np.stack([lattice_image, lattice_image + 1]))
    stack = read_image(tmp_path / "s.tif")
    np.testing.assert_allclose(stack.data, lattice_image + 0.5)
    assert any("2 frames" in n for n in stack.notes)


def test_dm3_reader_and_tags(shared_dir):
    loaded = read_image(shared_dir / "data/experimental/MoS2_monolayer_Se_implanted_60kV_temul.dm3")
    assert loaded.data.shape == (1024, 1024)
    assert loaded.pixel_size_nm == pytest.approx(0.0127, abs=1e-4)


@pytest.mark.parametrize(
    "name, content, match",
    [("bad.tif", b"II*\x00garbage", "not a valid TIFF"),
     ("bad.png", b"\x89PNG\r\n\x1a\nnope", "not a valid"),
     ("bad.dm3", b"\x00\x00\x00\x03" + b"\x00" * 40, "not a valid DM"),
     ("empty.tif", b"", "empty file"),
     ("x.xyz", b"1\n\nC 0 0 0\n", "cannot read")],
)
def test_corrupt_or_unsupported_files_give_one_sentence(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UsageError, match=match) as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_nan_blank_and_tiny_images_rejected(tmp_path):
    bad = np.ones((64, 64), np.float32)
    bad[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(UsageError, match="NaN"):
        read_image(tmp_path / "nan.npy")
    np.save(tmp_path / "blank.npy", np.zeros((64, 64)))
    with pytest.raises(UsageError, match="blank"):
        read_image(tmp_path / "blank.npy")
    np.save(tmp_path / "tiny.npy", np.random.rand(8, 8))
    with pytest.raises(UsageError, match="at least"):
        read_image(tmp_path / "tiny.npy")
    with pytest.raises(UsageError, match="does not exist"):
        read_image(tmp_path / "missing.tif")


def test_a_missing_reader_library_is_named_not_blamed_on_the_file(tmp_path, monkeypatch):
    from stackview.io import readers

    def needs_h5py(path):
        raise ModuleNotFoundError("No module named 'h5py'", name="h5py")

    monkeypatch.setitem(readers._READERS, "emd", needs_h5py)
    path = tmp_path / "a.emd"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(UsageError, match=r"needs the Python package 'h5py'.*pip install h5py"):
        read_image(path)


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from stackview.io.atomic import _UMASK, write_text_atomic

    new = tmp_path / "card.json"
    write_text_atomic(new, "{}")
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~_UMASK  # not mkstemp's private 0600
    os.chmod(new, 0o640)
    write_text_atomic(new, "{ }")  # replacing a file keeps its mode
    assert stat.S_IMODE(new.stat().st_mode) == 0o640 and new.read_text() == "{ }"

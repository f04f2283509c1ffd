"""Large images: the analysis's memory grows by a few images per image (a measured peak)."""

import tracemalloc

import numpy as np
import pytest
from lattice_images import degraded_image
from PIL import Image

from stackview.analysis.analyze import analyze_image
from stackview.models.bundle import load_bundle


def test_memory_grows_at_most_three_images_per_image(tmp_path):
    """The peak of the arrays an analysis allocates (tracemalloc: numpy, scipy; the network's
    batches are image-independent) grows by at most three float32 copies of the image per
    image, measured on a 2000² and a 4000² 8-bit image (7.5 and 15 nm of the same crystal)
    read from PNG. Before this front end the padded FFT alone took 16 float64 copies of an
    image (22.8 GB peak for an 8504² image; now 1.7 GB, benchmarks/bench_large_image.py)."""
    bundle = load_bundle("ReS2_slip_bilayer")
    sizes, peaks = (2000, 4000), []
    for n in sizes:
        img = degraded_image(slip_A=(1.2, 2.4), out_px=n, pixel_nm=0.00376,
                             rotation_deg=17.0, dose=30, fine_A=0.2)
        path = tmp_path / f"large{n}.png"
        Image.fromarray(img.astype(np.uint8)).save(path)
        del img
        tracemalloc.start()
        try:
            s = analyze_image(path, bundle=bundle, stride_nm=0.5, n_views=1).summary()
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        finally:
            tracemalloc.stop()
        assert s["pixel_size_nm"] == pytest.approx(0.00376, rel=0.01) and s["reliable"]
        assert float(np.hypot(s["Da_A_median"] - 1.2, s["Db_A_median"] - 2.4)) < 0.1
    image_mb = [n * n * 4 / 2**20 for n in sizes]
    slope = (peaks[1] - peaks[0]) / (image_mb[1] - image_mb[0])
    assert slope <= 3.0, f"{peaks} MB for {image_mb} MB images: {slope:.1f} images per image"
    assert peaks[1] <= 3 * image_mb[1] + 100

"""Model-free check of the bundled sample's slip.

Writes ``benchmarks/results/sample_resimulation_scan.json``.

The median NCC between the real ReS2 sample's 2.05 nm windows (lattice frame chosen as
``stackview analyze`` does) and noise-free re-simulations, over a grid of slips around the
models' readings: a slip that re-simulates better is a better reading, whatever model gave it.
"""
import json
from pathlib import Path

import numpy as np

from stackview.analysis.analyze import optics_for_card
from stackview.analysis.orient import candidate_frames
from stackview.analysis.resimulate import choose_frame, compare_window, simulate_window
from stackview.inference.spm import WindowSampler, window_centres_nm
from stackview.io.calibration import calibrate
from stackview.io.readers import read_image
from stackview.models.bundle import load_bundle
from stackview.models.registry import find_model

ROOT = Path(__file__).resolve().parents[1]
img = read_image(ROOT / "resources/samples/ReS2_bilayer_tedgen_sample4.png").data
b = load_bundle(find_model("ReS2_slip_bilayer"))
card = b.card
cal = calibrate(img, "ReS2", None, None)
frames = candidate_frames(cal.lattice_px, b.label_space.material, two_fold=True)
optics = optics_for_card(card)
frame, scores = choose_frame(img, cal.pixel_size_nm, b, frames, optics)
sampler = WindowSampler(img, cal.pixel_size_nm, card.sampling_A, card.patch_px, frame)
x_nm, y_nm = window_centres_nm(np.shape(img), cal.pixel_size_nm, sampler,
                               stride_nm=card.patch_nm / 2)
yy, xx = np.meshgrid(y_nm, x_nm, indexing="ij")
pts = np.column_stack([xx.ravel(), yy.ravel()])
windows = sampler.extract(pts / cal.pixel_size_nm)
print(len(windows), "windows")
res = {}
for da in np.arange(0.70, 0.881, 0.02):
    for db in np.arange(1.90, 2.021, 0.02):
        sims = simulate_window("ReS2", "slip", [da, db], card.sampling_A, card.patch_px, optics)
        n = [compare_window(w, sims).ncc for w in windows]
        res[(round(da, 3), round(db, 3))] = float(np.median(n))
best = max(res, key=res.get)
best = (float(best[0]), float(best[1]))
print("best", best, res[best])
for k in [(0.76, 1.96), (0.78, 1.96), (0.8, 1.96), (0.8, 1.94), (0.76, 1.98)]:
    print(k, res.get(k))
out = Path(__file__).parent / "results" / "sample_resimulation_scan.json"
out.write_text(json.dumps({"windows": len(windows), "best": [*best, res[best]],
                           "median_ncc": {f"{k[0]},{k[1]}": v for k, v in res.items()}},
                          indent=1) + "\n")
print("wrote", out)

"""Benchmark: SPM analysis throughput on a 1024² image, window vs dense mode.

A simulated ReS2 bilayer image of 1024² px at the model's sampling (so the window is the model's
~2 nm) is mapped at strides 0.5 nm and ~0.1 nm, window by window (no test-time views) and fully
convolutionally. Reported: windows (window-equivalents) per second, the largest symmetry-aware
difference between the dense and the window maps (Å), and each map's median error against the
simulated slip. The paper: 3750 patches in 4 minutes (15.6 patches/s) on a GPU. Writes
benchmarks/results/bench_analyze.json.

    python benchmarks/bench_analyze.py [--model ReS2_slip_bilayer] [--size 1024] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ReS2_slip_bilayer")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_analyze.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from stackview.inference.dense import dense_map
    from stackview.inference.spm import spm_map
    from stackview.materials import build_stack
    from stackview.models.bundle import load_bundle
    from stackview.simulation import PRESETS, simulate

    bundle = load_bundle(args.model)
    card = bundle.card
    s = card.sampling_A
    fov = (args.size * s, args.size * s)
    truth = np.array([1.0, 1.5])
    atoms = build_stack(card.material, [tuple(truth)], fov_A=fov, margin_A=10)
    image = simulate(atoms, PRESETS["ReS2-300kV"], sampling_A=s, fov_A=fov).image
    rng = np.random.default_rng(0)
    image = image + rng.normal(0, 0.1 * image.std(), image.shape).astype(np.float32)
    pixel_nm = s / 10
    space = bundle.label_space
    results = {"model": card.name, "backbone": card.backbone, "window_nm": card.patch_nm,
               "image_px": args.size, "sampling_A": s, "runs": []}
    # warm-up
    spm_map(image[:256, :256], pixel_nm, bundle, stride_nm=1.0, n_views=1)
    for stride in (0.5, 0.1):
        load = os.getloadavg()[0]
        dense = dense_map(image, pixel_nm, bundle, stride_nm=stride)
        t = time.perf_counter()
        window = spm_map(image, pixel_nm, bundle, stride_nm=dense.stride_nm, n_views=1)
        t_window = time.perf_counter() - t
        diff = space.distance(dense.values.reshape(-1, dense.values.shape[-1]),
                              window.values.reshape(-1, window.values.shape[-1]))
        results["runs"].append({
            "stride_nm_requested": stride, "stride_nm": round(dense.stride_nm, 4),
            "windows": window.n_patches,
            "window_mode_s": round(t_window, 2),
            "window_mode_windows_per_s": round(window.n_patches / t_window, 1),
            "dense_mode_s": round(dense.seconds, 2),
            "dense_mode_windows_per_s": round(dense.n_patches / dense.seconds, 1),
            "dense_vs_window_max_diff_A": round(float(diff.max()), 4),
            "dense_vs_window_median_diff_A": round(float(np.median(diff)), 4),
            "window_mode_error_vs_truth_median_A": round(float(np.median(
                space.distance(window.values.reshape(-1, 2), truth))), 4),
            "dense_mode_error_vs_truth_median_A": round(float(np.median(
                space.distance(dense.values.reshape(-1, 2), truth))), 4),
            "loadavg_at_start": round(load, 2),
        })
        print(json.dumps(results["runs"][-1]))
    results["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "torch": torch.__version__, "threads": args.threads}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: where a context model's dense map costs less than its window map (``--mode auto``).

The rotated two-domain image of ``bench_analyze.py`` (1024² px at the model's sampling, 17°,
read in the lattice frame an analysis finds), mapped at strides from 0.5 to 4 nm by
``dense_map`` and by ``spm_map`` (window mode), 1 view. The dense map's cost is the whole
image's trunk passes, nearly the same at every stride; the window map's grows as the square
of the inverse stride. Reported per stride: both times, the windows, and the dense map's
largest and median difference from the window map (all windows, and those more than a window
from the boundary). ``stackview.inference.dense.DENSE_PAYS_BELOW`` is set from this crossover.

Writes benchmarks/results/bench_mode_crossover.json (with the machine and load average).

    python benchmarks/bench_mode_crossover.py [--model ReS2_slip_bilayer] [--size 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_analyze import boundary_distance_nm, compare, two_domain_image  # noqa: E402

ROTATION = 17.0
STRIDES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="ReS2_slip_bilayer")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch

    from stackview.analysis.analyze import analyze_image
    from stackview.inference.dense import DENSE_PAYS_BELOW, dense_map, resolve_mode
    from stackview.inference.spm import WindowSampler, spm_map
    from stackview.io.atomic import write_text_atomic
    from stackview.models.bundle import load_bundle
    from stackview.models.registry import find_model

    torch.set_num_threads(args.threads)
    bundle = load_bundle(find_model(args.model))
    card = bundle.card
    pixel_nm = card.sampling_A / 10
    image = two_domain_image(args.size, card.sampling_A, ROTATION, material=card.material)
    frame = analyze_image(image, bundle=bundle, pixel_size_nm=pixel_nm, stride_nm=5.0,
                          n_views=1, mode="window").frame
    sampler = WindowSampler.for_model(image, pixel_nm, card, frame)
    spm_map(image[:256, :256], pixel_nm, bundle, stride_nm=1.0, n_views=1)  # warm-up
    rows = []
    for stride in STRIDES:
        load = os.getloadavg()[0]
        t = time.perf_counter()
        d = dense_map(image, pixel_nm, bundle, stride_nm=stride, sampler=sampler)
        dense_s = time.perf_counter() - t
        t = time.perf_counter()
        w = spm_map(image, pixel_nm, bundle, stride_nm=stride, n_views=1, sampler=sampler)
        window_s = time.perf_counter() - t
        far = boundary_distance_nm(w.x_nm, w.y_nm, args.size, pixel_nm, ROTATION) > card.patch_nm
        row = {"stride_nm": stride, "windows": w.n_patches, "window_s": round(window_s, 2),
               "dense_s": round(dense_s, 2), "faster": "dense" if dense_s < window_s else "window",
               "auto_picks": resolve_mode("auto", bundle, stride),
               "loadavg_at_start": round(load, 2),
               "dense_vs_window": compare(bundle.label_space, d, w, far)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = {"model": card.name, "image_px": args.size, "rotation_deg": ROTATION,
           "input_px": card.input_px, "dense_pays_below": DENSE_PAYS_BELOW,
           "auto_threshold_nm": round(DENSE_PAYS_BELOW * card.input_px * card.sampling_A / 10, 3),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "threads": args.threads, "processor": platform.processor()},
           "runs": rows}
    name = "bench_mode_crossover.json" if card.name == "ReS2_slip_bilayer" \
        else f"bench_mode_crossover_{card.name}.json"
    path = Path(args.out) if args.out else Path(__file__).parent / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(out, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: how much a context model's reading depends on how much image lies around the window
(issue 19). The window mode reads each window with the card's margin; the dense mode reads it with
the whole image around. A model trained for context should give the same slip at every margin.

Each held-out field of a labelled dataset (patches larger than the window) is read at every
margin the field holds from the card's (the trunk's stride apart); reported per margin: the largest, 99th
percentile and median symmetry-aware difference from the reading at the largest margin (the
dense mode's view), and the error against the labels.

    python benchmarks/context_margins.py MODEL DATASET.zarr [--n 200] [--out results/X.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def margin_readings(bundle, images: np.ndarray, margins, batch: int = 16) -> dict[int, np.ndarray]:
    """Labels read from the central window of ``images`` with each margin."""
    import torch

    from stackview.inference.train import context_crop

    spec = bundle.model.spec
    out = {}
    with torch.inference_mode():
        for m in margins:
            crops = context_crop(images, spec, m)
            vals = [bundle.model(torch.from_numpy(np.ascontiguousarray(
                crops[i:i + batch], dtype=np.float32)).unsqueeze(1)).numpy()
                for i in range(0, len(crops), batch)]
            out[m] = np.concatenate(vals)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    from stackview.datasets.store import PatchDataset
    from stackview.inference.predict import _as_bundle

    torch.set_num_threads(args.threads)
    bundle = _as_bundle(args.model)
    bundle.model.eval()
    spec = bundle.model.spec
    if not spec.context_px:
        raise SystemExit(f"{args.model} does not read context")
    ds = PatchDataset(args.dataset)
    n = min(args.n, len(ds))
    images, labels = ds.get(np.arange(n))
    images = np.asarray(images, dtype=np.float32)
    stride = bundle.model.split()[2]
    most = (images.shape[-1] - spec.window_px) // 2
    margins = list(range(spec.context_px, most + 1, stride))
    t0 = time.perf_counter()
    reads = margin_readings(bundle, images, margins)
    space = bundle.label_space
    u, sym = ("deg", "°") if bundle.card.task == "twist" else ("A", "Å")
    ref = reads[margins[-1]]
    rows = {}
    for m in margins:
        d = space.distance(reads[m], ref)
        e = space.distance(reads[m], labels)
        d, e = d[np.isfinite(d)], e[np.isfinite(e)]
        rows[str(m)] = {f"vs_largest_max_{u}": round(float(d.max()), 4),
                        f"vs_largest_p99_{u}": round(float(np.percentile(d, 99)), 4),
                        f"vs_largest_median_{u}": round(float(np.median(d)), 4),
                        f"error_mean_{u}": round(float(e.mean()), 4),
                        f"error_median_{u}": round(float(np.median(e)), 4)}
        print(f"margin {m:3d} px: vs {margins[-1]} px max {d.max():.4f} p99 "
              f"{np.percentile(d, 99):.4f} median {np.median(d):.4f} {sym}; error mean "
              f"{e.mean():.4f} {sym}")
    result = {"command": "python benchmarks/context_margins.py " + " ".join(
                  f"{a}" for a in (args.model, args.dataset, "--n", args.n)),
              "model": bundle.card.name, "card_margin_px": spec.context_px,
              "window_px": spec.window_px, "dataset": ds.summary(), "n": n,
              "margins": rows, "seconds": round(time.perf_counter() - t0, 1),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "threads": args.threads}}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

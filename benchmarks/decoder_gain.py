"""Benchmark: the invariant decoder with and without its per-window gain, on held-out fields.

A regressor trained with a squared loss on cosine features predicts their mean over the slips an
image leaves possible, which is the cosine shrunk; read at face value (gain 1) shrunk features sit
nearest to a slip farther from the fixed points of the label symmetries (AA and, for D ≡ −D,
a/2, b/2, (a+b)/2). The decoder now fits a gain per window (``invariant.GAIN_RANGE``). This
reads the same raw network outputs both ways and reports, per model, the symmetry-aware error
over all fields and over the fields whose true slip lies within 0.3 Å of a fixed point. Twist
models (the decoder fits the gain there too) report degrees, the fields within 5° of the ends of
the domain (where the features are flat) and the errors over 5° (a reading of the wrong end).

    python benchmarks/decoder_gain.py MODEL=DATASET.zarr [MODEL=DATASET.zarr ...] [--n 600]
        [--out benchmarks/results/decoder_gain.json]

Each dataset holds labelled fields of the model's sampling; a context model reads the central
window with its own margin (as the window mode does), a bare one the central patch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "decoder_gain.json"


def fixed_point_distance(space, labels: np.ndarray) -> np.ndarray:
    """Distance (Å) of each slip (B, 2) to the nearest point with D ≡ −D (the label space's
    symmetry-aware distance to 0, a/2, b/2 and (a+b)/2)."""
    points = np.array([[fa, fb] for fa in (0.0, 0.5) for fb in (0.0, 0.5)]) * space.lengths_A
    return np.min([space.distance(labels[:, :2], np.broadcast_to(p, (len(labels), 2)))
                   for p in points], axis=0)


def raw_outputs(bundle, images: np.ndarray, batch: int = 32):
    import torch

    from stackview.inference.train import context_crop

    model = bundle.model.eval()
    spec = model.spec
    if spec.context_px:
        images = context_crop(images, spec)
    elif images.shape[-1] > bundle.card.patch_px:
        o = (images.shape[-1] - bundle.card.patch_px) // 2
        images = images[:, o:o + bundle.card.patch_px, o:o + bundle.card.patch_px]
    with torch.inference_mode():
        return torch.cat([model(torch.from_numpy(np.asarray(images[s:s + batch], np.float32))
                                .unsqueeze(1), raw=True).float()
                          for s in range(0, len(images), batch)])


def near_ends(space, labels: np.ndarray, width_deg: float = 5.0) -> np.ndarray:
    """Twist: whether each true angle (B, 1) lies within ``width_deg`` of an end of the domain."""
    lo, hi = space.domain_deg
    theta = np.asarray(space.canonical(labels), float).reshape(-1)
    return (theta - lo < width_deg) | (hi - theta < width_deg)


def summary(err: np.ndarray, near: np.ndarray, unit: str = "A") -> dict:
    ok = np.isfinite(err)  # a wrong stacking family is an infinite distance
    e = err[ok]
    out = {"n": int(ok.sum()), "wrong_family": int((~ok).sum()),
           f"mean_{unit}": round(float(e.mean()), 4),
           f"median_{unit}": round(float(np.median(e)), 4),
           f"p95_{unit}": round(float(np.percentile(e, 95)), 4)}
    if unit == "deg":
        out["over_5_deg"] = int((e > 5).sum())
    sel = near[ok]
    if sel.any():
        key = "near_ends" if unit == "deg" else "near_fixed_point"
        out[key] = {"n": int(sel.sum()), f"mean_{unit}": round(float(e[sel].mean()), 4),
                    f"median_{unit}": round(float(np.median(e[sel])), 4)}
        out[f"elsewhere_mean_{unit}"] = round(float(e[~sel].mean()), 4)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", metavar="MODEL=DATASET")
    ap.add_argument("--n", type=int, default=600, help="fields per dataset")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import torch

    import stackview.inference.invariant as invariant
    from stackview.datasets.store import open_dataset
    from stackview.models.bundle import load_bundle

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = []
    for pair in args.pairs:
        name, path = pair.split("=", 1)
        bundle = load_bundle(name)
        space = bundle.model.spec.label_space()
        ds = open_dataset(path)
        n = min(len(ds), args.n)
        images, labels = ds.get(np.arange(n))
        labels = np.asarray(labels, float)
        t0 = time.perf_counter()
        raw = raw_outputs(bundle, np.asarray(images))
        twist = hasattr(space, "period_deg")
        near = near_ends(space, labels) if twist else fixed_point_distance(space, labels) < 0.3
        row = {"model": name, "dataset": str(path), "n": n}
        default = invariant.GAIN_RANGE
        for key, gains in (("gain_1", (1.0, 1.0)), ("gain_fitted", default)):
            invariant.GAIN_RANGE = gains
            try:
                decoded, _ = bundle.model.decode(raw)
            finally:
                invariant.GAIN_RANGE = default
            err = space.distance(decoded.numpy(), labels)
            row[key] = summary(np.asarray(err, float).reshape(-1), near, "deg" if twist else "A")
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"{name}: gain 1 {row['gain_1']}\n    fitted {row['gain_fitted']}", flush=True)
    import stackview

    result = {"command": "python benchmarks/decoder_gain.py " + " ".join(argv or sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "stackview": {"path": str(Path(stackview.__file__).parent)},
              "gain_range": list(invariant.GAIN_RANGE), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

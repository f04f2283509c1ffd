"""Benchmark: how far a model's dense map lies from its window map on clean simulated fields
(issue 19's bar: 0.02 Å for slip; the bundled tests hold twist models to 0.05°).

For each label (a twist angle, or a slip "Da,Db" for bilayers) one uniform clean field is
simulated with the material's default optics, mapped in dense mode and in window mode (1 view)
at the same nodes, and the largest symmetry-aware difference over the windows whose margin lies
inside the field is reported, with the median error of each map against the truth.

    python benchmarks/dense_minus_window.py MoS2_twist_bilayer --labels 8 20 40 --fov-nm 12.8
    python benchmarks/dense_minus_window.py ReS2_slip_bilayer --labels 1.0,1.5 0.07,0.21
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def measure(name: str, label: tuple[float, ...], fov_nm: float, stride_nm: float) -> dict:
    from stackview.inference.dense import dense_map
    from stackview.inference.spm import spm_map
    from stackview.materials import build_stack, build_twisted
    from stackview.models.bundle import load_bundle
    from stackview.simulation import resolve_optics, simulate
    from stackview.simulation.optics import DEFAULT_OPTICS, FALLBACK_OPTICS

    bundle = load_bundle(name)
    card, space = bundle.card, bundle.label_space
    optics = resolve_optics(DEFAULT_OPTICS.get(card.material, FALLBACK_OPTICS))
    fov = (10 * fov_nm, 10 * fov_nm)
    if card.task == "twist":
        atoms = build_twisted(card.material, float(label[0]), fov_A=fov, margin_A=10)
    else:
        atoms = build_stack(card.material, [tuple(label)], fov_A=fov, margin_A=10)
    image = simulate(atoms, optics, sampling_A=card.sampling_A, fov_A=fov).image
    px_nm = card.sampling_A / 10
    t0 = time.perf_counter()
    dense = dense_map(image, px_nm, bundle, stride_nm=stride_nm)
    t_dense = time.perf_counter() - t0
    t0 = time.perf_counter()
    window = spm_map(image, px_nm, bundle, stride_nm=dense.stride_nm, n_views=1)
    t_window = time.perf_counter() - t0
    n = dense.values.shape[-1]
    d, w = dense.values.reshape(-1, n), window.values.reshape(-1, n)
    reach_nm = (card.patch_px / 2 + card.context_px) * px_nm
    side_nm = image.shape[0] * px_nm
    xx, yy = np.meshgrid(dense.x_nm, dense.y_nm)
    inside = ((np.minimum(xx, side_nm - xx) >= reach_nm)
              & (np.minimum(yy, side_nm - yy) >= reach_nm)).ravel()
    truth = np.asarray(label, dtype=float)
    if n > truth.size:  # a family column
        truth = np.concatenate([truth, np.zeros(n - truth.size)])
    diff = space.distance(d, w)[inside]
    return {"label": list(label), "windows_inside": int(inside.sum()),
            "dense_minus_window_max": float(diff.max()),
            "dense_minus_window_median": float(np.median(diff)),
            "dense_error_median": float(np.median(space.distance(d[inside], truth))),
            "window_error_median": float(np.median(space.distance(w[inside], truth))),
            "seconds_dense": round(t_dense, 2), "seconds_window": round(t_window, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="bundle name or path")
    p.add_argument("--labels", nargs="+", required=True,
                   help="twist angles (deg) or bilayer slips 'Da,Db' (Å)")
    p.add_argument("--fov-nm", type=float, default=12.8, help="side of the simulated field")
    p.add_argument("--stride-nm", type=float, default=0.4)
    p.add_argument("--out", help="JSON file to write")
    args = p.parse_args(argv)
    rows = [measure(args.model, tuple(float(v) for v in lab.split(",")), args.fov_nm,
                    args.stride_nm) for lab in args.labels]
    unit = "deg" if len(rows[0]["label"]) == 1 else "A"
    for r in rows:
        print(f"{r['label']}: dense - window max {r['dense_minus_window_max']:.4f} {unit} over "
              f"{r['windows_inside']} windows; median error dense {r['dense_error_median']:.4f}, "
              f"window {r['window_error_median']:.4f} {unit}")
    if args.out:
        out = {"model": args.model, "unit": unit, "fov_nm": args.fov_nm,
               "stride_nm": args.stride_nm, "machine": f"{platform.machine()}, "
               f"{platform.processor() or 'cpu'}", "rows": rows}
        Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

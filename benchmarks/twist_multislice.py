"""Independent physics for the twist models: abTEM multislice images of twisted bilayer MoS2.

Each image is a 2.8 nm field at the paper's 60 kV conditions (31.5 mrad aperture, 49.5–198 mrad
ADF), with what the training simulator does not model the same way: a full multislice
calculation (channelling, no incoherent approximation), a random defocus of 0–30 Å, a random
source blur, scan jitter (every scan line shifted at random) and Poisson noise at a random dose.
The images are written as calibrated TIFFs and read by ``stackview analyze``'s own code
(:func:`stackview.analysis.analyze.analyze_image`, material MoS2, the model chosen by the
field), so the reading, the calibration and the frame are all part of what is measured.

Run from the repository root::

    python benchmarks/twist_multislice.py [--n 6] [--seed 0] [--workers 2] [--model NAME] [--fit]
        [--update-card KEY]

The multislice images are cached in ``benchmarks/.corpus/twist_multislice/`` (one TIFF and a
JSON of its truth each; ~4 min per image on two cores), so a second run only analyses. Writes
``benchmarks/results/twist_multislice.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stackview.core.labels import TwistLabels  # noqa: E402
from stackview.io.tiff import write_calibrated_tiff  # noqa: E402
from stackview.materials import build_twisted  # noqa: E402
from stackview.simulation import PRESETS, simulate  # noqa: E402

CACHE = ROOT / "benchmarks" / ".corpus" / "twist_multislice"
RESULTS = ROOT / "benchmarks" / "results" / "twist_multislice.json"
FOV_NM = 2.8
SAMPLING_A = 0.08  # the paper's MoS2 images: 0.06 Å/px


def draw_conditions(rng: np.random.Generator) -> dict:
    """One image's truth and imaging conditions."""
    return {
        "theta_deg": float(rng.uniform(5.0, 55.0)),
        "top_shift_A": [float(v) for v in rng.uniform(0, 20.0, 2)],
        "defocus_A": float(rng.uniform(0.0, 30.0)),
        "source_size_A": float(rng.uniform(0.5, 0.9)),
        "scan_jitter_A": float(rng.uniform(0.03, 0.15)),
        "dose_counts_per_px": float(np.exp(rng.uniform(np.log(20.0), np.log(300.0)))),
        "rotation_deg": float(rng.uniform(0.0, 360.0)),
    }


def make_image(cond: dict, seed: int, workers: int) -> np.ndarray:
    """The multislice image of ``cond``: structure, abTEM, scan jitter, Poisson noise."""
    from scipy import ndimage

    optics = PRESETS["MoS2-60kV"].replace(defocus_A=cond["defocus_A"],
                                          source_size_A=cond["source_size_A"])
    fov = FOV_NM * 10.0
    # the whole stack turned in the image plane, as a sample sits on the grid at any angle
    margin = 8.0
    atoms = build_twisted("MoS2", cond["theta_deg"], fov_A=(fov + 2 * margin,) * 2,
                          top_shift_A=cond["top_shift_A"])
    c = fov / 2
    t = math.radians(cond["rotation_deg"])
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    pos = atoms.positions.copy()
    pos[:, :2] -= margin  # the built region, centred on the field of view
    pos[:, :2] = (pos[:, :2] - c) @ rot.T + c
    atoms.positions = pos
    sim = simulate(atoms, optics, SAMPLING_A, fov, method="multislice", num_workers=workers)
    image = np.asarray(sim.image, dtype=np.float64)
    rng = np.random.default_rng(seed)
    # scan jitter: each scan line displaced along the fast scan direction
    shifts = rng.normal(0.0, cond["scan_jitter_A"] / SAMPLING_A, image.shape[0])
    image = np.stack([ndimage.shift(row, s, order=3, mode="nearest")
                      for row, s in zip(image, shifts, strict=True)])
    image = image - image.min()
    image = image / image.mean() * cond["dose_counts_per_px"]
    return rng.poisson(image).astype(np.float32)


def build_set(n: int, seed: int, workers: int, only=None) -> list[tuple[Path, dict]]:
    """The set's images (made where not cached); ``only``: make just these indices, in this
    order (a second process can fill the set from its end)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    conds = [draw_conditions(rng) for _ in range(n)]
    out = []
    for i in (range(n) if only is None else only):
        cond = conds[i]
        tif = CACHE / f"seed{seed}_{i:02d}.tif"
        meta = tif.with_suffix(".json")
        if not (tif.exists() and meta.exists()):
            t0 = time.perf_counter()
            image = make_image(cond, seed * 1000 + i, workers)
            write_calibrated_tiff(tif, image, SAMPLING_A / 10.0)
            cond["seconds"] = round(time.perf_counter() - t0, 1)
            meta.write_text(json.dumps(cond, indent=1))
            print(f"{tif.name}: θ {cond['theta_deg']:.2f}°, {cond['seconds']} s", flush=True)
        out.append((tif, json.loads(meta.read_text())))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", help="model name (default: MoS2's, chosen by the field)")
    ap.add_argument("--stride", type=float, default=0.1, help="SPM stride (nm)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--fit", action="store_true",
                    help="also refine every window by the physics fit (analyze --fit)")
    ap.add_argument("--build-only", action="store_true", help="make the images, do not analyse")
    ap.add_argument("--only", type=int, nargs="+", metavar="I",
                    help="with --build-only: make just these images, in this order")
    ap.add_argument("--update-card", metavar="KEY",
                    help="record the result in the card of the model used, under this key")
    args = ap.parse_args(argv)

    from stackview.analysis.analyze import analyze_image

    images = build_set(args.n, args.seed, args.workers, args.only if args.build_only else None)
    if args.build_only:
        return 0
    space = TwistLabels("MoS2")
    rows = []
    for tif, cond in images:
        t0 = time.perf_counter()
        result = analyze_image(tif, model=args.model, material="MoS2", stride_nm=args.stride,
                               fit=args.fit)
        s = result.summary()
        theta = s.get("theta_deg_median")
        err = float(space.distance(theta, cond["theta_deg"])) if theta is not None else None
        fitted = (s.get("fit") or {}).get("theta_deg_median")
        fit_err = float(space.distance(fitted, cond["theta_deg"])) if fitted is not None else None
        rows.append({"image": tif.name, "theta_true_deg": round(cond["theta_deg"], 3),
                     "theta_read_deg": None if theta is None else round(theta, 3),
                     "error_deg": None if err is None else round(err, 3),
                     "theta_fit_deg": None if fitted is None else round(fitted, 3),
                     "fit_error_deg": None if fit_err is None else round(fit_err, 3),
                     "fit_sigma_deg": (s.get("fit") or {}).get("sigma_theta_deg_median"),
                     "confused": bool(err is not None and abs(theta - (60 - cond["theta_deg"]))
                                      < abs(theta - cond["theta_deg"])),
                     "n_windows": s["n_patches"], "model": s["model"],
                     "window_nm": s["window_nm"], "pixel_size_nm": s["pixel_size_nm"],
                     "reliable": s["reliable"], "twist_bound": s.get("twist_bound", {}).get("text"),
                     "resimulation_ncc_median": s.get("resimulation_ncc_median"),
                     "defocus_A": round(cond["defocus_A"], 1),
                     "dose_counts_per_px": round(cond["dose_counts_per_px"], 1),
                     "seconds": round(time.perf_counter() - t0, 2)})
        print(json.dumps(rows[-1]), flush=True)
    errors = [r["error_deg"] for r in rows if r["error_deg"] is not None]
    fit_errors = [r["fit_error_deg"] for r in rows if r["fit_error_deg"] is not None]
    report = {
        "what": "abTEM multislice 2.8 nm MoS2 twist images read by analyze_image",
        "machine": f"{platform.node()} {platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "fov_nm": FOV_NM, "sampling_A": SAMPLING_A, "n": len(rows),
        "mean_error_deg": round(float(np.mean(errors)), 3) if errors else None,
        "median_error_deg": round(float(np.median(errors)), 3) if errors else None,
        "max_error_deg": round(float(np.max(errors)), 3) if errors else None,
        "confusions": int(sum(r["confused"] for r in rows)),
        "fit_mean_error_deg": round(float(np.mean(fit_errors)), 3) if fit_errors else None,
        "fit_max_error_deg": round(float(np.max(fit_errors)), 3) if fit_errors else None,
        "unread": len(rows) - len(errors),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    if args.update_card:
        from stackview.models.bundle import update_card
        from stackview.models.registry import find_model

        models = {r["model"] for r in rows}
        if len(models) != 1:
            raise SystemExit(f"the images were read by several models ({sorted(models)})")
        card = {k: v for k, v in report.items() if k not in ("rows", "machine")}
        card["per_image"] = [{k: r[k] for k in ("theta_true_deg", "theta_read_deg",
                                                 "error_deg", "theta_fit_deg", "fit_error_deg",
                                                 "defocus_A", "dose_counts_per_px")}
                             for r in rows]
        card["command"] = "python benchmarks/twist_multislice.py " + " ".join(argv or sys.argv[1:])
        update_card(args.model or find_model(models.pop()), accuracy={args.update_card: card})
    print(f"mean error {report['mean_error_deg']}°, median {report['median_error_deg']}°, "
          f"max {report['max_error_deg']}°, confusions {report['confusions']} of {len(rows)}; "
          f"with the fit: mean {report['fit_mean_error_deg']}°, max {report['fit_max_error_deg']}°"
          f" -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

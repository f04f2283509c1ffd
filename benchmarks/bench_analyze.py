"""Benchmark: SPM map speed and agreement, window vs dense mode, 1 vs 3 views (issue 19).

Part 1 (maps): a simulated two-domain bilayer image of the model's material (ReS2: slip (1.0,
1.5) Å left, (4.0, 0.5) Å right; hexagonal TMDs: a parallel (3R-family) domain at (0.6, 1.2) Å
left of an antiparallel (2H-family) one at (1.0, 0.4) Å; Gaussian noise), 1024² px at the
model's sampling, rotated by 17° so that the windows are read in a rotated frame as in a real
image, mapped at strides 0.5 and 0.1 nm by ``spm_map`` (window mode) and ``dense_map`` (dense
mode) with 1 and 3 views. Reported: windows per second, the dense map's largest and median
symmetry-aware difference from the window map (all windows, and those more than one window from
the boundary), and each map's median error against the simulated slips away from the boundary.
At the fine stride the window mode maps a central 6 nm region (``--window-roi-nm``; a model
that reads context takes minutes per view on 2 cores for the whole image), compared with the
dense map of the same region; the dense speed is the whole image's.

Part 2 (whole analysis): ``analyze_image`` + ``write_results`` (reading, calibration by the
lattice, frame, maps, the re-simulation check, writing map.csv/TIFFs/figure/summary) of a
1470² px image of the same kind at 0.0073 nm/px (a 10.7 nm field; the file's calibration is
not given), at 0.1 nm stride, modes auto (dense here) and window, 1 view.

Writes benchmarks/results/bench_analyze.json (with the machine and the load average).

    python benchmarks/bench_analyze.py [--model ReS2_slip_bilayer] [--size 1024] [--threads 2]

(results/bench_analyze.json for the ReS2 model, results/bench_analyze_MODEL.json for another)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

# (Da, Db) Å and antiparallel, left and right of the boundary
SLIPS = {"ReS2": ((1.0, 1.5, False), (4.0, 0.5, False))}
HEXAGONAL_SLIPS = ((0.6, 1.2, False), (1.0, 0.4, True))


def domain_slips(material: str):
    return SLIPS.get(material, HEXAGONAL_SLIPS)


def truth_label(space, slip) -> np.ndarray:
    """A domain's label vector in the model's space (family 1 = antiparallel)."""
    da, db, anti = slip
    return np.array([da, db, 1.0 if anti else 0.0] if space.family == "both" else [da, db])


def two_domain_image(size_px: int, pixel_A: float, rotation_deg: float, seed: int = 0,
                     material: str = "ReS2"):
    """A bilayer image with the domains of :func:`domain_slips` left and right of the middle
    column."""
    from scipy import ndimage

    from stackview.materials import build_stack
    from stackview.simulation import resolve_optics, simulate
    from stackview.simulation.optics import DEFAULT_OPTICS, FALLBACK_OPTICS

    pad = int(size_px * 0.25)
    n = size_px + 2 * pad
    fov = (n * pixel_A, n * pixel_A)
    halves = []
    optics = resolve_optics(DEFAULT_OPTICS.get(material, FALLBACK_OPTICS))
    for da, db, anti in domain_slips(material):
        atoms = build_stack(material, [(da, db)], fov_A=fov, margin_A=10, antiparallel=anti)
        halves.append(simulate(atoms, optics, sampling_A=pixel_A, fov_A=fov).image)
    img = halves[0].copy()
    img[:, n // 2:] = halves[1][:, n // 2:]
    if rotation_deg:
        img = ndimage.rotate(img, rotation_deg, reshape=False, order=3, mode="reflect")
    img = img[pad:pad + size_px, pad:pad + size_px]
    rng = np.random.default_rng(seed)
    return (img + rng.normal(0, 0.1 * img.std(), img.shape)).astype(np.float32)


def boundary_distance_nm(x_nm, y_nm, size_px, pixel_nm, rotation_deg):
    """Distance of window centres from the (rotated) domain boundary."""
    c = size_px * pixel_nm / 2
    t = np.radians(rotation_deg)
    xx, yy = np.meshgrid(x_nm - c, y_nm - c, indexing="xy")
    # ndimage.rotate turns the content by +rotation counter-clockwise in (row, col) display
    return np.abs(xx * np.cos(t) - yy * np.sin(t))


def compare(space, a, b, mask):
    """Largest and median slip difference of two maps (all windows, and those in ``mask``);
    windows read in different families are counted, not measured."""
    d = space.distance(a.values.reshape(-1, a.values.shape[-1]),
                       b.values.reshape(-1, b.values.shape[-1])).reshape(a.values.shape[:2])
    same = np.isfinite(d)

    def stat(fn, sel):
        return round(float(fn(d[sel])), 4) if sel.any() else None

    out = {"max_A": stat(np.max, same), "median_A": stat(np.median, same),
           "max_far_A": stat(np.max, mask & same), "median_far_A": stat(np.median, mask & same)}
    if space.family == "both":
        out["family_differs"] = int((~same).sum())
        out["family_differs_far"] = int((mask & ~same).sum())
    return out


def error_vs_truth(space, smap, dist, material, window_nm):
    c = smap.x_nm.mean()
    xx = np.broadcast_to(smap.x_nm[None, :], dist.shape)
    out = {}
    for truth, left in zip(domain_slips(material), (True, False), strict=True):
        mask = (dist > window_nm) & ((xx < c) if left else (xx > c))
        if mask.any():
            d = space.distance(smap.values[mask], truth_label(space, truth))
            out[f"{truth[:2]}"] = round(float(np.median(d)), 4)
            if space.family == "both":
                out[f"{truth[:2]}_family_accuracy"] = round(float(np.isfinite(d).mean()), 4)
    return out


def part_maps(bundle, size, rotation, strides, window_roi_nm: float = 6.0):
    from stackview.analysis.analyze import analyze_image
    from stackview.inference.dense import dense_map
    from stackview.inference.spm import WindowSampler, spm_map

    card = bundle.card
    pixel_nm = card.sampling_A / 10
    image = two_domain_image(size, card.sampling_A, rotation, material=card.material)
    # the frame (rotation, scan-distortion correction) as an analysis reads it
    frame = analyze_image(image, bundle=bundle, pixel_size_nm=pixel_nm, stride_nm=5.0,
                          n_views=1, mode="window").frame
    sampler = WindowSampler.for_model(image, pixel_nm, card, frame)
    space = bundle.label_space
    spm_map(image[:256, :256], pixel_nm, bundle, stride_nm=1.0, n_views=1)  # warm-up
    runs = []
    for stride in strides:
        row = {"stride_nm": stride}
        # at fine strides the window mode (minutes per view on 2 cores for a model that reads
        # context) maps a central region; the dense mode maps the whole image for its speed
        # and the same region for the comparison (both read the image around the region)
        roi = None
        if stride < 0.25 and window_roi_nm:
            c = size * pixel_nm / 2
            roi = (c - window_roi_nm / 2, c - window_roi_nm / 2,
                   c + window_roi_nm / 2, c + window_roi_nm / 2)
        for views in (1, 3):
            load = os.getloadavg()[0]
            d = dense_map(image, pixel_nm, bundle, stride_nm=stride, n_views=views,
                          sampler=sampler)
            full = d
            if roi is not None:
                d = dense_map(image, pixel_nm, bundle, stride_nm=stride, n_views=views,
                              sampler=sampler, roi_nm=roi)
            w = spm_map(image, pixel_nm, bundle, stride_nm=stride, n_views=views,
                        sampler=sampler, roi_nm=roi)
            row[f"views{views}"] = {
                "windows": full.n_patches,
                "window_windows_per_s": round(w.n_patches / w.seconds, 1),
                "dense_windows_per_s": round(full.n_patches / full.seconds, 1),
                "dense_trunk_passes": full.extra["trunk_passes"],
                "window_s": round(w.seconds, 2), "dense_s": round(full.seconds, 2),
                "compared_windows": w.n_patches,
                "compared_roi_nm": None if roi is None else [round(v, 3) for v in roi],
                "loadavg_at_start": round(load, 2)}
            dist = boundary_distance_nm(w.x_nm, w.y_nm, size, pixel_nm, rotation)
            far = dist > card.patch_nm
            row[f"views{views}"]["dense_vs_window"] = compare(space, d, w, far)
            row[f"views{views}"]["window_error_vs_truth_A"] = error_vs_truth(
                space, w, dist, card.material, card.patch_nm)
            row[f"views{views}"]["dense_error_vs_truth_A"] = error_vs_truth(
                space, d, dist, card.material, card.patch_nm)
            if views > 1:
                row[f"views{views}"]["median_uncertainty_A"] = {
                    "window": round(float(np.median(w.uncertainty)), 4),
                    "dense": round(float(np.median(d.uncertainty)), 4)}
            print(json.dumps(row[f"views{views}"]))
        runs.append(row)
    return {"image_px": size, "rotation_deg": rotation, "runs": runs}


def part_whole(bundle, size, pixel_nm, rotation, stride):
    from stackview.analysis.analyze import analyze_image, write_results

    image = two_domain_image(size, pixel_nm * 10, rotation, seed=1,
                             material=bundle.card.material)
    out = {"image_px": size, "pixel_nm": pixel_nm, "stride_nm": stride, "runs": []}
    for mode in ("auto", "window"):
        with tempfile.TemporaryDirectory() as tmp:
            load = os.getloadavg()[0]
            t = time.perf_counter()
            result = analyze_image(image, bundle=bundle, material=bundle.card.material,
                                   stride_nm=stride, n_views=1, mode=mode)
            write_results(result, tmp)
            total = time.perf_counter() - t
        n = result.smap.n_patches
        out["runs"].append({
            "mode": mode, "used": result.smap.mode, "windows": n, "seconds": round(total, 2),
            "windows_per_s": round(n / total, 1),
            "stages_s": result.stage_seconds,
            "pixel_size_nm_read": round(result.calibration.pixel_size_nm, 6),
            "loadavg_at_start": round(load, 2)})
        print(json.dumps(out["runs"][-1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ReS2_slip_bilayer")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--whole-size", type=int, default=1470)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-whole", action="store_true")
    ap.add_argument("--window-roi-nm", type=float, default=6.0,
                    help="side of the central region the window mode maps at fine strides "
                         "(0: the whole image)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out is None:
        name = "" if args.model == "ReS2_slip_bilayer" else f"_{args.model}"
        args.out = str(Path(__file__).parent / "results" / f"bench_analyze{name}.json")

    import torch

    torch.set_num_threads(args.threads)
    from stackview.models.bundle import load_bundle

    bundle = load_bundle(args.model)
    bundle.model.to(args.device)
    card = bundle.card
    results = {"command": "python benchmarks/bench_analyze.py"
               + ("" if args.model == "ReS2_slip_bilayer" else f" --model {args.model}"),
               "model": card.name,
               "context_px": card.context_px, "backbone": card.backbone,
               "window_nm": card.patch_nm, "sampling_A": card.sampling_A}
    results["maps"] = part_maps(bundle, args.size, 17.0, (0.5, 0.1), args.window_roi_nm)
    if not args.skip_whole:
        results["whole_analysis"] = part_whole(bundle, args.whole_size, 0.0073, 17.0, 0.1)
    dev = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
           else f"CPU ({platform.processor() or platform.machine()}, {args.threads} threads)")
    results["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "device": dev, "torch": torch.__version__, "threads": args.threads}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

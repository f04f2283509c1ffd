"""``stackview analyze``: slip/twist maps of images and folders (no Qt; cheap imports)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stackview.cli import add_device, add_out
from stackview.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze", help="map the slip or twist of ADF-STEM images",
        description="Analyse images (files or folders) with a model: per-window slip (Da, Db) "
                    "or twist maps by strided pattern matching. For each image OUT/<stem>/ gets "
                    "map.csv, map_*.tif (calibrated), figure.png and summary.json; a folder "
                    "also gets OUT/stats.csv. An image whose reading cannot be trusted is "
                    "flagged unreliable (printed, in summary.json, on the figure, and in "
                    "stats.csv, whose printed aggregate leaves it out).",
        epilog="Example (in a clone): stackview analyze "
               "stackview/resources/samples/ReS2_bilayer_tedgen_sample4.png --out results/",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER",
                   help="image files (tif, png, jpg, dm3, dm4, emd, ser, mrc, npy) or folders")
    p.add_argument("--model", help="model bundle name or path (default: the material's model)")
    p.add_argument("--material", help="material of the sample (default: the model's)")
    p.add_argument("--pixel-size", type=float, metavar="NM",
                   help="pixel size in nm (default: from the file, else from the FFT lattice)")
    p.add_argument("--window", type=float, metavar="NM",
                   help="window side in nm: picks the material's model for that window (with "
                        "--model: must match its window); default: by the image's field, the "
                        "largest window the image holds three times")
    p.add_argument("--stride", type=float, default=0.5, metavar="NM",
                   help="distance between windows in nm (default 0.5; with --refine: the "
                        "coarse stride)")
    p.add_argument("--refine", action="store_true",
                   help="two-level search: refine around interfaces with --fine-stride")
    p.add_argument("--fine-stride", type=float, default=0.1, metavar="NM",
                   help="fine stride for --refine (default 0.1 nm)")
    p.add_argument("--roi", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"),
                   help="analyse only this region (nm from the top-left corner)")
    p.add_argument("--views", type=int, default=3,
                   help="test-time views per window for the uncertainty (1 = fastest)")
    p.add_argument("--no-undistort", dest="undistort", action="store_false",
                   help="do not undo the scan distortion measured from the lattice (windows "
                        "are then only rotated and scaled)")
    add_device(p)
    p.add_argument("--fit", action="store_true",
                   help="refine every window by fitting the incoherent simulation to it from "
                        "the network's reading: fitted labels, their σ, NCC and reduced χ² go "
                        "to map.csv and summary.json (see docs/fit.md)")
    add_out(p, help="output folder")
    p.add_argument("--pel", nargs="?", const="auto", metavar="CSV",
                   help="add the slips scattered on the material's PEL to the figure (your "
                        "cached or the shipped landscape, or this CSV; see 'stackview pel')")
    p.set_defaults(func=run_analyze)


def expand_inputs(inputs: list[str]) -> list[Path]:
    from stackview.io.readers import SUFFIXES

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES and f.is_file())
            if not found:
                raise UsageError(f"the folder {p} contains no supported image files")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise UsageError(f"the file {p} does not exist")
    return files


def run_analyze(args: argparse.Namespace) -> int:
    from stackview.analysis.analyze import analyze_image, resolve_bundle, write_results
    from stackview.analysis.batch import batch_statistics, stats_row
    from stackview.analysis.export import write_stats_csv
    from stackview.engine.jobs import TextProgress

    if args.views < 1 or args.views > 8:
        raise UsageError("--views must be between 1 and 8")
    if not (0 < args.stride <= 50):
        raise UsageError(f"the stride {args.stride:g} nm must be between 0 and 50 nm")
    from stackview.engine.devices import resolve_device

    device = resolve_device(args.device)
    files = expand_inputs(args.inputs)
    # a named model is loaded once; otherwise each image gets the material's model for its
    # field (or for --window), loaded once per model
    bundle = resolve_bundle(args.model, args.material, window_nm=args.window)
    landscapes: dict[str, object] = {}
    if args.pel:  # checked up front: a bilayer slip model
        from stackview.pel.figure import landscape_for_bundle

        landscapes[bundle.card.name] = landscape_for_bundle(args.pel, bundle)
    if not args.model:
        bundle = None
    out = Path(args.out)
    rows, failures = [], 0
    for path in files:
        try:
            result = analyze_image(
                path, bundle=bundle, material=args.material, pixel_size_nm=args.pixel_size,
                window_nm=args.window, stride_nm=args.stride, refine=args.refine,
                fine_stride_nm=args.fine_stride, roi_nm=args.roi, n_views=args.views,
                undistort=args.undistort, device=device, fit=args.fit,
                progress=TextProgress(path.name[:24]),
            )
        except UsageError as exc:
            if len(files) == 1:
                raise
            failures += 1
            print(f"stackview: skipped {path.name}: {exc}", file=sys.stderr)
            continue
        folder = write_results(result, out)
        if args.pel:
            from stackview.pel.figure import add_pel_to_figure, landscape_for_bundle

            name = result.bundle.card.name
            if name not in landscapes:
                landscapes[name] = landscape_for_bundle(args.pel, result.bundle)
            add_pel_to_figure(result, folder, landscapes[name])
        s = result.summary()
        print(f"{path.name}: {s['n_patches']} windows in {s['seconds']:.1f} s "
              f"({s['patches_per_second']} windows/s), pixel {s['pixel_size_nm']:.5g} nm "
              f"({s['calibration_source']}); "
              + ", ".join(f"{n} median {s[n + '_median']:.3f} (IQR {s[n + '_iqr']:.3f})"
                          for n in result.smap.names if n + "_median" in s)
              + f" -> {folder}")
        if "fit" in s:
            f = s["fit"]
            print("  fit: " + ", ".join(f"{n} median {f[n + '_median']:.3f} (σ "
                                        f"{f['sigma_' + n + '_median']:.3f})"
                                        for n in result.smap.names if n + "_median" in f)
                  + f", NCC {f.get('ncc_median', float('nan')):.2f}, reduced χ² "
                    f"{f.get('chi2_red_median', float('nan')):.2f}; moved "
                    f"{f.get('moved_more_than_sigma', 0)} of {f['n_windows']} windows by more "
                    f"than their σ ({f['seconds']:.1f} s)")
        row = stats_row(result)
        if not result.reliable:
            print(f"  WARNING: unreliable: {row['reliable_reason']}")
        for note in result.notes:
            print(f"  note: {note}")
        rows.append(row)
    if len(files) > 1 and rows:
        stats = write_stats_csv(out / "stats.csv", rows)
        batch = batch_statistics(rows)
        print(f"{batch.headline()} -> {stats}")
        for line in batch.aggregate_lines():
            print(f"  {line}")
    return 0 if not failures else 2

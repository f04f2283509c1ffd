"""``stackview analyze``: slip/twist maps of images and folders (no Qt; cheap imports). The job
is :class:`stackview.workflows.analyze.AnalyzeJob`, run by
:func:`stackview.workflows.analyze.analyze_images`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stackview.cli import add_device, add_out


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
    p.add_argument("--task", choices=("slip", "twist"),
                   help="with --material: which of its models (default: slip when it has one; "
                        "MoS2 twisted bilayers need --task twist)")
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
    p.add_argument("--views", type=int, default=1,
                   help="test-time views per window (default 1); N > 1 adds a per-window "
                        "uncertainty (the views' spread) at about N times the time. Measured "
                        "with the bundled ReS2 model on 2 cores: 3 views change the slip by "
                        "< 0.001 Å and cost 2.7x (window mode) to 3.3x (dense), and their "
                        "spread (0.003 Å median) is below the error against the truth "
                        "(0.01-0.02 Å): no accuracy for the time, hence the default")
    p.add_argument("--mode", choices=("auto", "window", "dense"), default="auto",
                   help="how windows are read: one by one ('window'), or all from shared "
                        "trunk passes ('dense': many times faster at fine strides; only for "
                        "models trained with --context, whose dense maps still differ from "
                        "window maps by ~0.03 Å on ResNet-18, see README); 'auto' (default) is "
                        "dense where the model allows it and it costs less: strides below 0.6 of "
                        "the window with its margins (about 2.5 nm for ReS2)")
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
    p.add_argument("--figure-format", choices=("png", "svg"), default="png",
                   help="format of each image's figure (default png)")
    p.set_defaults(func=run_analyze, job=job_from_args)


def job_from_args(args: argparse.Namespace):
    """The :class:`~stackview.workflows.analyze.AnalyzeJob` of ``analyze`` arguments."""
    from stackview.workflows.analyze import AnalyzeJob

    return AnalyzeJob(
        inputs=tuple(args.inputs), out=args.out, model=args.model, material=args.material,
        task=args.task, pixel_size_nm=args.pixel_size, window_nm=args.window, stride_nm=args.stride,
        refine=args.refine, fine_stride_nm=args.fine_stride,
        roi_nm=tuple(args.roi) if args.roi else None, n_views=args.views,
        undistort=args.undistort, device=args.device, fit=args.fit, pel=args.pel,
        figure_format=args.figure_format, mode=args.mode)


def _print_result(path: Path, result, folder: Path, row: dict) -> None:
    s = result.summary()
    print(f"{path.name}: {s['n_patches']} windows in {s['seconds']:.1f} s "
          f"({s['patches_per_second']} windows/s), pixel {s['pixel_size_nm']:.5g} nm "
          f"({s['calibration_source']}); "
          + ", ".join(f"{n} median {s[n + '_median']:.3f} (IQR {s[n + '_iqr']:.3f})"
                      for n in result.smap.names if n + "_median" in s)
          + f" -> {folder}")
    st = s.get("statistics", {})
    if "families" in st:
        fams = ", ".join(f"{k} {v}" for k, v in st["families"].items())
        classes = ", ".join(f"{k} {v}" for k, v in sorted(st["stacking"].items(),
                                                          key=lambda kv: -kv[1]))
        print(f"  stacking: windows per family {fams}; per class {classes} (the slip medians "
              f"are of the {st['majority_family']} windows)")
    if "fit" in s:
        f = s["fit"]
        print("  fit: " + ", ".join(f"{n} median {f[n + '_median']:.3f} (σ "
                                    f"{f['sigma_' + n + '_median']:.3f})"
                                    for n in result.smap.names if n + "_median" in f)
              + f", NCC {f.get('ncc_median', float('nan')):.2f}, reduced χ² "
                f"{f.get('chi2_red_median', float('nan')):.2f}; moved "
                f"{f.get('moved_more_than_sigma', 0)} of {f['n_windows']} windows by more "
                f"than their σ ({f['seconds']:.1f} s)")
    if not result.reliable:
        print(f"  WARNING: unreliable: {row['reliable_reason']}")
    for note in result.notes:
        print(f"  note: {note}")


def run_analyze(args: argparse.Namespace) -> int:
    from stackview.engine.jobs import TextProgress
    from stackview.workflows.analyze import analyze_images

    outcome = analyze_images(
        job_from_args(args), progress_for=lambda path: TextProgress(path.name[:24]),
        cancel=args.cancel, on_result=_print_result,
        on_skip=lambda path, message: print(f"stackview: skipped {path.name}: {message}",
                                            file=sys.stderr))
    if outcome.stats is not None:
        print(f"{outcome.batch.headline()} -> {outcome.stats}")
        for line in outcome.batch.aggregate_lines():
            print(f"  {line}")
    return 0 if not outcome.failures else 2

"""``stackview dataset make|info`` (no Qt; numpy/zarr/dask imported inside the run functions)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dataset", help="make and inspect labelled training datasets",
        description="Simulate labelled ADF-STEM patches (slip or twist) into a chunked zarr "
                    "dataset with a labels table and provenance.",
    )
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    mk = sub.add_parser(
        "make", help="simulate a labelled dataset",
        description="Simulate labelled patches. Slip labels (Da, Db[, Dc, Dd]) in Å cover the "
                    "material's canonical domain, on a grid (--grid-step) or at random "
                    "(--count); twist labels cover --theta-range, each angle at --positions "
                    "places across one moiré period. Every random choice follows --seed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    mk.add_argument("out", help="output folder (NAME.zarr)")
    g = mk.add_argument_group("labels")
    g.add_argument("--task", choices=("slip", "twist"), default="slip")
    g.add_argument("--material", default="ReS2", help="material name (see 'materials list')")
    g.add_argument("--layers", type=int, choices=(2, 3), default=2, help="slip: 2 or 3 layers")
    g.add_argument("--family", choices=("parallel", "antiparallel", "both"), default="parallel",
                   help="slip bilayers of MoS2-like materials: same-orientation layers (3R "
                        "family), one layer turned by 180° (2H family), or half of each")
    g.add_argument("--count", type=int, default=1000,
                   help="random labels: number of patches; slip grid: patches per grid point")
    g.add_argument("--grid-step", type=float, metavar="ANGSTROM",
                   help="slip labels on a grid with this step in Å (paper: 0.1 train, 0.05 test)")
    g.add_argument("--theta-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   default=(0.0, 60.0), help="twist angles in degrees")
    g.add_argument("--theta-step", type=float, metavar="DEG",
                   help="twist angles on a grid with this step (default: random angles)")
    g.add_argument("--positions", type=int, default=16,
                   help="twist: patches per angle across one moiré period")
    g = mk.add_argument_group("imaging")
    g.add_argument("--sampling", type=float, default=0.16, metavar="A_PER_PX",
                   help="pixel size in Å")
    g.add_argument("--patch-px", type=int, default=128, help="patch side in pixels")
    g.add_argument("--optics", default="",
                   help="optics preset (ReS2-300kV, MoS2-60kV) or custom conditions, e.g. "
                        "kv=200,convergence=25,adf=45-180 (default: the material's preset)")
    g.add_argument("--defocus", type=float, nargs="+", default=[35.0, 40.0, 45.0],
                   metavar="ANGSTROM", help="defocus values drawn per patch")
    g.add_argument("--source-size", type=float, nargs="+", default=[0.6, 0.65, 0.7],
                   metavar="ANGSTROM", help="source sizes (FWHM) drawn per patch")
    g.add_argument("--orientation", choices=("aligned", "random"),
                   help="lattice a along +x, or a random rotation per patch "
                        "(default: aligned for slip, random for twist)")
    g = mk.add_argument_group("robustness augmentation")
    g.add_argument("--vacancies", type=float, nargs=2, default=(0.0, 0.0),
                   metavar=("LOW", "HIGH"), help="fraction of atoms removed (paper: up to 0.1)")
    g.add_argument("--holes", type=float, default=0.0, metavar="PROB",
                   help="probability of a hole in one layer (up to --hole-max of the patch)")
    g.add_argument("--hole-max", type=float, default=0.25, help="largest hole area fraction")
    g.add_argument("--masks", type=float, default=0.0, metavar="PROB",
                   help="probability of occluding blobs")
    g.add_argument("--contamination", type=float, default=0.0, metavar="PROB",
                   help="probability of a surface-contamination texture")
    g.add_argument("--psnr", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="Gaussian noise with PSNR (dB) uniform in this range (paper: 7 to 30)")
    g.add_argument("--noise-probability", type=float, default=1.0,
                   help="fraction of patches that get --psnr noise")
    g = mk.add_argument_group("style")
    g.add_argument("--style", choices=("clean", "physics", "drit"), default="clean")
    g.add_argument("--style-bundle", default="", help="DRIT style bundle for --style drit")
    g.add_argument("--style-diverse", action="store_true",
                   help="DRIT: a random style code per patch (default: the bundle's reference)")
    g.add_argument("--physics", nargs="+", default=[], metavar="KEY=VALUE",
                   help="physics style: override a per-patch parameter range, e.g. "
                        "dose_per_px=20:100 or gamma=1 (keys: dose_per_px, background, "
                        "read_noise, source_blur_px, gamma, scan_jitter_px, drift_px)")
    g = mk.add_argument_group("run")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--chunk", type=int, default=32, help="patches per chunk and per task")
    g.add_argument("--scheduler", default="threads",
                   help="threads, processes, sync, or a dask.distributed address "
                        "(tcp://host:8786)")
    g.add_argument("--workers", type=int, help="local workers (default: CPU count)")
    g.add_argument("--resume", action="store_true", help="continue an interrupted run")
    g.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    mk.set_defaults(func=run_make, job=job_from_args,
                    cancelled="run the same command with --resume to continue")

    info = sub.add_parser("info", help="print a dataset's provenance and label summary",
                          description="Print a dataset's size, labels, conditions and "
                                      "provenance.")
    info.add_argument("path", help="dataset folder (NAME.zarr)")
    info.add_argument("--json", action="store_true", help="print the full provenance as JSON")
    info.set_defaults(func=run_info)


def spec_from_args(args: argparse.Namespace):
    """The :class:`DatasetSpec` of ``dataset make`` arguments."""
    from stackview.datasets.spec import DatasetSpec

    grid = (args.grid_step is not None) if args.task == "slip" else (args.theta_step is not None)
    return DatasetSpec(
        task=args.task, material=args.material, layers=args.layers, family=args.family,
        mode="grid" if grid else "random", count=args.count,
        step_A=args.grid_step or 0.1, theta_range_deg=tuple(args.theta_range),
        theta_step_deg=args.theta_step or 0.5, positions=args.positions,
        sampling_A=args.sampling, patch_px=args.patch_px, optics=args.optics,
        defocus_A=tuple(args.defocus), source_size_A=tuple(args.source_size),
        orientation=args.orientation or "", vacancy_range=tuple(args.vacancies),
        hole_probability=args.holes, hole_max_fraction=args.hole_max,
        mask_probability=args.masks, contamination_probability=args.contamination,
        psnr_range_dB=tuple(args.psnr) if args.psnr else None,
        noise_probability=args.noise_probability, style=args.style,
        style_bundle=args.style_bundle, style_diverse=args.style_diverse,
        physics=_physics_overrides(args.physics), seed=args.seed, chunk=args.chunk,
    )


def _physics_overrides(items: list[str]) -> dict:
    from stackview.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            parts = [float(v) for v in value.split(":")]
            if len(parts) not in (1, 2):
                raise ValueError
        except ValueError:
            raise UsageError(f"--physics expects KEY=VALUE or KEY=LOW:HIGH, not {item!r}") from None
        out[key.strip()] = parts[0] if len(parts) == 1 else parts
    return out


def job_from_args(args: argparse.Namespace):
    """The :class:`~stackview.workflows.dataset.DatasetJob` of ``dataset make`` arguments."""
    from stackview.workflows.dataset import DatasetJob

    return DatasetJob(spec=spec_from_args(args), out=args.out, scheduler=args.scheduler,
                      workers=args.workers, resume=args.resume, overwrite=args.overwrite)


def run_make(args: argparse.Namespace) -> int:
    from stackview.datasets.store import open_dataset
    from stackview.engine.jobs import TextProgress
    from stackview.workflows.dataset import make_dataset

    job = job_from_args(args)
    spec = job.spec
    path = make_dataset(job, command=args.command_line, progress=TextProgress("dataset"),
                        cancel=args.cancel)
    ds = open_dataset(path)
    print(f"wrote {len(ds)} patches ({spec.patch_px} px, {spec.patch_nm:.2f} nm at "
          f"{spec.sampling_A:g} Å/px) to {path} in {ds.attrs.get('generation_seconds', 0):.1f} s")
    return 0


def run_info(args: argparse.Namespace) -> int:
    import numpy as np

    from stackview.datasets.store import open_dataset

    ds = open_dataset(args.path)
    if args.json:
        print(json.dumps(ds.attrs, indent=1))
        return 0
    s = ds.attrs["spec"]
    print(repr(ds))
    print(f"  made by: {ds.attrs.get('command')}")
    print(f"  stackview {ds.attrs.get('stackview_version')}, seed {s['seed']}, style {s['style']}, "
          f"optics {ds.attrs.get('optics_preset')}, orientation {s['orientation']}")
    for k, name in enumerate(ds.label_names):
        col = ds.labels[:, k]
        print(f"  {name}: {col.min():.4g} to {col.max():.4g} ({len(np.unique(col))} values)")
    for name, col in sorted(ds.conditions.items()):
        finite = col[np.isfinite(col)] if col.dtype.kind == "f" else col
        if finite.size:
            print(f"  {name}: {finite.min():.4g} to {finite.max():.4g}")
    return 0

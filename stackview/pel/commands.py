"""``stackview pel``: compute, import, cache and plot interlayer PELs (no Qt; cheap imports).
The job is :class:`stackview.workflows.pel.PelJob`, run by
:func:`stackview.workflows.pel.make_landscape`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stackview.cli import add_out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pel", help="interlayer potential-energy landscape over the slip (Da, Db)",
        description="Energy of a slip-stacked bilayer as a function of the slip (Da, Db) on an "
                    "N×N grid over the cell (top layer slid rigidly, z relaxed or rigid), in meV "
                    "per cell relative to the minimum, with CHGNet + DFT-D3 or imported from "
                    "your own DFT grid (CSV). The result is cached as your landscape of the "
                    "material; 'stackview analyze --pel' scatters slips on it.",
        epilog="Examples: stackview pel --material MoS2 --grid 12 --figure pel.png ; "
               "stackview pel --material MoS2 --family antiparallel --grid 24 ; "
               "stackview pel --material ReS2 --import my_dft.csv",
    )
    p.add_argument("--material", required=True, help="material name, e.g. ReS2")
    p.add_argument("--family", choices=("parallel", "antiparallel"), default="parallel",
                   help="stacking family: parallel (same-orientation layers, 3R: AA, AB, BA; "
                        "default) or antiparallel (top layer turned by 180° about its metal "
                        "atom, 2H: AA′, AB′, A′B; hexagonal TMDs such as MoS2)")
    p.add_argument("--grid", type=int, default=12, metavar="N",
                   help="grid points per cell side (default 12)")
    p.add_argument("--relax", choices=("z", "none"), default="z",
                   help="z: relax z coordinates at every slip (default); none: rigid layers")
    p.add_argument("--calculator", default="chgnet+d3", choices=("chgnet+d3", "chgnet"),
                   help="potential (default chgnet+d3: CHGNet plus D3(BJ) dispersion)")
    p.add_argument("--interlayer", type=float, metavar="ANGSTROM",
                   help="starting (or, rigid, fixed) interlayer distance in Å (default: the "
                        "material's)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes computing grid points in parallel (default 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per worker (default 1)")
    p.add_argument("--import", dest="import_csv", metavar="CSV",
                   help="import your own grid (columns Da_A, Db_A or frac_a, frac_b; "
                        "energy_meV or energy_eV) instead of computing")
    p.add_argument("--recompute", action="store_true",
                   help="compute even when a landscape with the same settings is cached")
    p.add_argument("--no-cache", action="store_true",
                   help="do not store the result as your landscape of the material")
    add_out(p, metavar="CSV", help="also write the grid here (+ .json provenance)",
            required=False)
    p.add_argument("--figure", metavar="PNG", help="write a heat map (PNG or SVG)")
    p.add_argument("--slips", metavar="MAP_CSV",
                   help="scatter the slips of an analysis (its map.csv) on the figure")
    p.set_defaults(func=run_pel, job=job_from_args)


def job_from_args(args: argparse.Namespace):
    """The :class:`~stackview.workflows.pel.PelJob` of ``pel`` arguments."""
    from stackview.workflows.pel import PelJob

    return PelJob(material=args.material, family=args.family, grid=args.grid, relax=args.relax,
                  calculator=args.calculator, interlayer_A=args.interlayer,
                  workers=args.workers, threads=args.threads, import_csv=args.import_csv,
                  recompute=args.recompute, cache=not args.no_cache, out=args.out,
                  figure=args.figure, slips=args.slips)


def run_pel(args: argparse.Namespace) -> int:
    from stackview.engine.jobs import TextProgress
    from stackview.pel.landscape import caveats, summarize
    from stackview.workflows.pel import make_landscape

    job = job_from_args(args)
    outcome = make_landscape(job, command=args.command_line,
                             progress=TextProgress(f"PEL {job.material}"), cancel=args.cancel)
    for note in outcome.notes:
        print(f"  note: {note}", file=sys.stderr)
    landscape = outcome.landscape
    s = summarize(landscape)
    fixed = ", ".join(f"{k} {v:.1f}" for k, v in s["energy_at_frac_meV"].items())
    print(f"{landscape.material.name} PEL, {landscape.family} family, {landscape.shape[0]}×"
          f"{landscape.shape[1]} ({outcome.action}): span {s['span_meV']:.1f} meV/cell; at "
          f"fractional slips: {fixed} meV/cell")
    if s.get("energy_at_class_meV"):
        print("stacking classes (meV/cell): " + ", ".join(
            f"{k} {v:.1f}" for k, v in s["energy_at_class_meV"].items()))
    mins = s["minima"][:4]
    print("lowest minima (Da Å, Db Å, meV/cell): "
          + "; ".join(f"({m[0]:.3f}, {m[1]:.3f}) {m[2]:.1f}" for m in mins))
    for note in caveats(landscape):
        print(f"  note: {note}", file=sys.stderr)
    for path in outcome.written:
        print(f"-> {Path(path)}")
    return 0

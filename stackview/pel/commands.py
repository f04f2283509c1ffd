"""``stackview pel``: compute, import, cache and plot interlayer PELs (no Qt; cheap imports)."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path

from stackview.cli import add_out
from stackview.errors import UsageError


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
    p.set_defaults(func=run_pel)


def command_line(args: argparse.Namespace) -> str:
    """The canonical command that reproduces a computed landscape (recorded in its JSON)."""
    parts = ["stackview", "pel", "--material", args.material]
    if args.family != "parallel":
        parts += ["--family", args.family]
    parts += ["--grid", str(args.grid), "--relax", args.relax, "--calculator", args.calculator]
    if args.interlayer is not None:
        parts += ["--interlayer", f"{args.interlayer:g}"]
    if args.out:
        parts += ["--out", args.out]
    return shlex.join(parts)


def _matches(prov: dict, args: argparse.Namespace) -> bool:
    return (prov.get("source") == "computed" and prov.get("grid") == [args.grid, args.grid]
            and (prov.get("family") or "parallel") == args.family
            and prov.get("relax") == args.relax
            and (prov.get("calculator") or {}).get("name") == args.calculator
            and (args.interlayer is None
                 or (prov.get("relaxation") or {}).get("interlayer_start_A") == args.interlayer))


def run_pel(args: argparse.Namespace) -> int:
    from stackview.core.stacking import check_family
    from stackview.engine.jobs import TextProgress
    from stackview.materials import get_material
    from stackview.pel import compute, files
    from stackview.pel.landscape import PelSettings, caveats, summarize

    material = get_material(args.material)
    check_family(material, args.family)
    if args.slips and not args.figure:
        raise UsageError("--slips needs --figure (the slips are drawn on the heat map)")
    if args.import_csv:
        landscape = files.import_csv(args.import_csv, material, args.family)
        action = f"imported {args.import_csv}"
    else:
        landscape = None
        if not args.recompute:
            for path in (files.user_path(material, args.family),
                         files.shipped_path(material, args.family)):
                if path.exists():
                    cached = files.read_landscape(path, material, args.family)
                    if _matches(cached.provenance, args):
                        landscape, action = cached, f"reused {path} (use --recompute to redo)"
                        break
        if landscape is None:
            settings = PelSettings(grid=args.grid, relax=args.relax,
                                   interlayer_A=args.interlayer, family=args.family)
            landscape = compute.compute_landscape(
                material, settings, calculator=args.calculator, workers=args.workers,
                threads=args.threads, progress=TextProgress(f"PEL {material.name}"),
                command=command_line(args),
            )
            action = f"computed in {landscape.provenance['seconds']:.1f} s"
    written = []
    if not args.no_cache and not action.startswith("reused"):
        previous = files.user_path(material, args.family)
        if previous.exists() and not args.import_csv:
            with contextlib.suppress(UsageError):
                if files.read_landscape(previous, material).provenance.get("source") == "imported":
                    print(f"  note: your imported landscape of {material.name} in {previous} "
                          "is replaced by the computed one", file=sys.stderr)
        written.append(files.cache_landscape(landscape))
    if args.out:
        written.append(files.write_landscape(landscape, args.out)[0])
    if args.figure:
        from stackview.pel.plot import read_slips_csv, write_landscape_figure

        slips = read_slips_csv(args.slips) if args.slips else None
        written.append(write_landscape_figure(args.figure, landscape, slips))
    s = summarize(landscape)
    fixed = ", ".join(f"{k} {v:.1f}" for k, v in s["energy_at_frac_meV"].items())
    print(f"{material.name} PEL, {landscape.family} family, {landscape.shape[0]}×"
          f"{landscape.shape[1]} ({action}): span {s['span_meV']:.1f} meV/cell; at fractional "
          f"slips: {fixed} meV/cell")
    if s.get("energy_at_class_meV"):
        print("stacking classes (meV/cell): " + ", ".join(
            f"{k} {v:.1f}" for k, v in s["energy_at_class_meV"].items()))
    mins = s["minima"][:4]
    print("lowest minima (Da Å, Db Å, meV/cell): "
          + "; ".join(f"({m[0]:.3f}, {m[1]:.3f}) {m[2]:.1f}" for m in mins))
    for note in caveats(landscape):
        print(f"  note: {note}", file=sys.stderr)
    for path in written:
        print(f"-> {Path(path)}")
    return 0

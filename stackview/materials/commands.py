"""``stackview materials list|show|import`` (no Qt; cheap imports)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "materials", help="list, show and import materials",
        description="Built-in and user materials in the stackview cell convention: reduced "
                    "cell, |a| <= |b|, gamma >= 90 degrees, a along +x.",
    )
    sub = p.add_subparsers(dest="materials_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list the known materials with their cells",
                        description="List built-in and user materials with a, b, gamma and "
                                    "atoms per cell.")
    ls.set_defaults(func=run_list)
    show = sub.add_parser("show", help="print a material's cell and basis",
                          description="Print a material's cell (a, b, gamma), atoms per cell, "
                                      "interlayer distance, literature values and basis.")
    show.add_argument("name", help="material name, e.g. ReS2")
    show.set_defaults(func=run_show)
    imp = sub.add_parser(
        "import", help="add a material from a CIF/xyz/POSCAR file",
        description="Derive a monolayer's primitive cell from a structure file (a monolayer "
                    "flake or supercell, or a periodic layered bulk cell) and register it in "
                    "your material library.",
    )
    imp.add_argument("file", help="structure file readable by ASE (CIF, xyz, POSCAR, ...)")
    imp.add_argument("--name", help="name for the new material (default: from the file name)")
    imp.add_argument("--interlayer", type=float, metavar="ANGSTROM",
                     help="interlayer (mid-plane) distance in Å")
    imp.add_argument("--overwrite", action="store_true", help="replace a user material")
    imp.set_defaults(func=run_import)


def run_list(args: argparse.Namespace) -> int:
    from stackview.materials import get_material, list_materials
    from stackview.materials.catalog import is_builtin

    print(f"{'name':<10} {'a (Å)':>8} {'b (Å)':>8} {'gamma':>8} {'atoms':>6}  kind")
    for name in list_materials():
        m = get_material(name)
        kind = "built-in" if is_builtin(name) else "user"
        print(f"{m.name:<10} {m.a_A:8.4f} {m.b_A:8.4f} {m.gamma_deg:8.3f} {m.n_atoms:6d}  {kind}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from stackview.core.labels import SlipLabels, TwistLabels
    from stackview.materials import get_material

    m = get_material(args.name)
    print(m.summary())
    slip = SlipLabels(m)
    (a0, a1), (b0, b1) = slip.domain_bounds_A()[:2]
    twist = TwistLabels(m)
    print(f"  slip label domain: Da in [{a0:.3f}, {a1:.3f}) Å, Db in [{b0:.3f}, {b1:.3f}] Å "
          "(D ≡ D + lattice, D ≡ −D)")
    lo, hi = twist.domain_deg
    sym = f"projected {twist.rotation_order}-fold" + (", mirror" if twist.mirror else "")
    print(f"  twist label domain: theta in [{lo:g}°, {hi:g}°] ({sym})")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from stackview.materials import material_from_file, save_user_material

    m = material_from_file(args.file, name=args.name, interlayer_A=args.interlayer)
    path = save_user_material(m, overwrite=args.overwrite)
    print(m.summary())
    print(f"saved to {path}")
    return 0

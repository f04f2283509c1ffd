"""``stackview simulate``: one labelled ADF-STEM image as a calibrated TIFF + JSON sidecar."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stackview.cli import add_out
from stackview.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a labelled ADF-STEM image of a stack",
        description="Simulate an ADF-STEM image of a slip-stacked bilayer/trilayer or a twisted "
        "bilayer and write it as a TIFF (pixel size in its ImageJ tags) with a JSON "
        "sidecar holding the labels and imaging conditions.",
        epilog="Example: stackview simulate --material ReS2 --slip 1.0 1.5 --fov 4 "
        "--sampling 0.1 --out x.tif",
    )
    p.add_argument(
        "--material", required=True, help="material name (see 'stackview materials list')"
    )
    what = p.add_argument_group("stack")
    what.add_argument(
        "--slip",
        nargs=2,
        type=float,
        metavar=("DA", "DB"),
        help="slip of interface 1-2 in Å along a and b",
    )
    what.add_argument("--layers", type=int, default=2, choices=(2, 3), help="number of layers")
    what.add_argument(
        "--family",
        choices=("parallel", "antiparallel"),
        default="parallel",
        help="bilayers: parallel layers (ReS2; the 3R family of MoS2: AA, AB, BA) or the top "
        "layer turned by 180° about its metal atom (the 2H family: AA', AB', A'B); default "
        "parallel",
    )
    what.add_argument(
        "--slip2",
        nargs=2,
        type=float,
        metavar=("DC", "DD"),
        help="slip of interface 2-3 in Å (trilayers)",
    )
    what.add_argument(
        "--twist", type=float, metavar="DEG", help="twist angle of a bilayer (degrees)"
    )
    what.add_argument(
        "--interlayer",
        type=float,
        metavar="ANGSTROM",
        help="interlayer distance in Å (default: the material's)",
    )
    what.add_argument(
        "--origin",
        nargs=2,
        type=float,
        default=(0.0, 0.0),
        metavar=("X", "Y"),
        help="lattice origin in Å (moves the stack in the field of view)",
    )
    what.add_argument(
        "--jitter-z",
        type=float,
        default=0.0,
        metavar="ANGSTROM",
        help="uniform random z displacement amplitude (Å)",
    )
    what.add_argument(
        "--jitter-xy",
        type=float,
        default=0.0,
        metavar="ANGSTROM",
        help="uniform random in-plane displacement amplitude (Å)",
    )
    what.add_argument(
        "--vacancies",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="fraction of atoms removed at random (0-0.5)",
    )
    what.add_argument("--seed", type=int, help="random seed for jitter and vacancies")
    img = p.add_argument_group("image")
    img.add_argument(
        "--fov", type=float, required=True, metavar="NM", help="field of view (square side) in nm"
    )
    img.add_argument(
        "--sampling",
        type=float,
        default=0.1,
        metavar="A_PER_PX",
        help="pixel size in Å per pixel (default 0.1)",
    )
    img.add_argument(
        "--method",
        choices=("incoherent", "multislice"),
        default="incoherent",
        help="incoherent (fast, default) or abTEM multislice (slow, accurate)",
    )
    opt = p.add_argument_group("microscope (defaults from the preset)")
    from stackview.simulation.optics import DEFAULT_OPTICS, FALLBACK_OPTICS

    by_preset: dict[str, list[str]] = {}
    for name, preset in DEFAULT_OPTICS.items():
        by_preset.setdefault(preset, []).append(name)
    defaults = "; ".join(f"{p} for {', '.join(names)}" for p, names in by_preset.items())
    opt.add_argument(
        "--preset",
        help=f"imaging preset: ReS2-300kV or MoS2-60kV (default: {defaults}, else "
        f"{FALLBACK_OPTICS})",
    )
    opt.add_argument("--kv", type=float, help="accelerating voltage (kV)")
    opt.add_argument("--convergence", type=float, metavar="MRAD", help="convergence semi-angle")
    opt.add_argument(
        "--adf", nargs=2, type=float, metavar=("INNER", "OUTER"), help="ADF detector angles (mrad)"
    )
    opt.add_argument("--defocus", type=float, metavar="ANGSTROM", help="defocus (Å)")
    opt.add_argument("--cs", type=float, metavar="ANGSTROM", help="spherical aberration Cs (Å)")
    opt.add_argument(
        "--source-size", type=float, metavar="ANGSTROM", help="source size, Gaussian FWHM (Å)"
    )
    add_out(p, help="output TIFF path (a .json sidecar is written beside it)")
    p.set_defaults(func=run_simulate)


def _optics_from_args(args, material_name: str):
    import dataclasses

    from stackview.simulation import PRESETS
    from stackview.simulation.optics import DEFAULT_OPTICS, FALLBACK_OPTICS

    preset = args.preset or DEFAULT_OPTICS.get(material_name, FALLBACK_OPTICS)
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    changes = {}
    for field, value in (
        ("energy_kV", args.kv),
        ("convergence_mrad", args.convergence),
        ("defocus_A", args.defocus),
        ("Cs_A", args.cs),
        ("source_size_A", args.source_size),
    ):
        if value is not None:
            changes[field] = value
    if args.adf is not None:
        changes["adf_inner_mrad"], changes["adf_outer_mrad"] = args.adf
    return preset, dataclasses.replace(PRESETS[preset], **changes)


def run_simulate(args: argparse.Namespace) -> int:
    from stackview import __version__
    from stackview.core.stacking import classify, has_families
    from stackview.engine.jobs import TextProgress
    from stackview.io.atomic import write_text_atomic
    from stackview.io.tiff import write_calibrated_tiff
    from stackview.materials import build_stack, build_twisted, get_material
    from stackview.simulation import simulate

    material = get_material(args.material)
    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UsageError(f"the output {out.name} must be a .tif or .tiff file")
    if not (0.01 <= args.sampling <= 1.0):
        raise UsageError(f"the sampling {args.sampling:g} Å/px is out of range (0.01 to 1 Å/px)")
    if not (0.2 <= args.fov <= 200):
        raise UsageError(f"the field of view {args.fov:g} nm is out of range (0.2 to 200 nm)")
    n_px = round(args.fov * 10 / args.sampling)
    if n_px > 8192:
        raise UsageError(
            f"the image would be {n_px} pixels wide; use a larger --sampling or a "
            "smaller --fov (at most 8192 px)"
        )
    if args.method == "multislice" and args.fov > 10:
        raise UsageError("multislice takes minutes per nm²: use --fov 10 or less")
    fov_A = (n_px * args.sampling, n_px * args.sampling)
    margin_A = 10.0
    common = dict(
        fov_A=fov_A,
        margin_A=margin_A,
        interlayer_A=args.interlayer,
        origin_A=tuple(args.origin),
        jitter_z_A=args.jitter_z,
        jitter_xy_A=args.jitter_xy,
        vacancy_ratio=args.vacancies,
        seed=args.seed,
    )
    if args.twist is not None:
        if args.slip is not None or args.layers != 2 or args.family != "parallel":
            raise UsageError("--twist makes a twisted bilayer: leave out --slip, --layers and "
                             "--family (θ near 60° is the antiparallel family)")
        atoms = build_twisted(material, args.twist, **common)
        labels = {"theta_deg": args.twist}
    else:
        if args.slip is None:
            raise UsageError("give --slip DA DB for a slip stack or --twist DEG for a twisted one")
        slips = [tuple(args.slip)]
        if args.layers == 3:
            if args.slip2 is None:
                raise UsageError("a trilayer needs --slip2 DC DD for interface 2-3")
            slips.append(tuple(args.slip2))
        elif args.slip2 is not None:
            raise UsageError("--slip2 needs --layers 3")
        antiparallel = args.family == "antiparallel"
        if antiparallel and not has_families(material):
            raise UsageError(f"{material.name} has one stacking family (its layer looks the same "
                             "turned by 180°): leave out --family")
        atoms = build_stack(material, slips, antiparallel=antiparallel, **common)
        labels = dict(
            zip(("Da_A", "Db_A", "Dc_A", "Dd_A"), [v for s in slips for v in s], strict=False)
        )
        if antiparallel:
            labels["family"] = "antiparallel"
        if len(slips) == 1:
            name = classify(material, [slips[0]], args.family)[0][0]
            if name:
                labels["stacking"] = name
    preset, optics = _optics_from_args(args, material.name)
    progress = TextProgress(f"{args.method}") if args.method == "multislice" else None
    start = time.perf_counter()
    result = simulate(
        atoms, optics, sampling_A=args.sampling, fov_A=fov_A, method=args.method, progress=progress
    )
    seconds = time.perf_counter() - start
    sidecar = {
        "stackview_version": __version__,
        "material": material.name,
        "task": atoms.info["stackview"]["task"],
        "layers": atoms.info["stackview"]["layers"],
        "labels": labels,
        "label_convention": "slip D = Da·â + Db·b̂ in Å along the material's a, b "
        "(a along +x, |a| <= |b|, gamma >= 90°); theta in degrees",
        "a_vec_A": material.a_vec_A.tolist(),
        "b_vec_A": material.b_vec_A.tolist(),
        "method": args.method,
        "preset": preset,
        "optics": optics.to_dict(),
        "sampling_A": args.sampling,
        "pixel_size_nm": args.sampling / 10,
        "shape_px": list(result.image.shape),
        "fov_nm": [fov_A[0] / 10, fov_A[1] / 10],
        "structure": atoms.info["stackview"],
        "seconds": round(seconds, 4),
    }
    sidecar_path = out.with_suffix(".json")
    write_calibrated_tiff(out, result.image, args.sampling / 10)
    write_text_atomic(
        sidecar_path, json.dumps(sidecar, indent=2, default=float, ensure_ascii=False) + "\n"
    )
    print(
        f"wrote {out} ({result.image.shape[1]}×{result.image.shape[0]} px, "
        f"{args.sampling / 10:g} nm/px, {seconds:.2f} s) and {sidecar_path}"
    )
    return 0

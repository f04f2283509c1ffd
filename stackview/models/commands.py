"""``stackview models list|show|install`` (no Qt; no torch at start-up)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models", help="list, show and install stacking-model bundles",
        description="Stacking-model bundles (NAME.safetensors + NAME.json card): the ones shipped "
                    "with stackview and those in your model library.",
    )
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list the known model bundles",
                        description="List shipped and user model bundles with material, task, "
                                    "backbone, input sampling and measured accuracy.")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)
    show = sub.add_parser("show", help="print a bundle's card",
                          description="Print a bundle's card: label convention, input sampling "
                                      "and patch size, training command and data, accuracy.")
    show.add_argument("bundle", help="bundle name (see 'models list') or path")
    show.add_argument("--json", action="store_true", help="print the full card as JSON")
    show.set_defaults(func=run_show)
    inst = sub.add_parser("install", help="copy a bundle into your model library",
                          description="Check that a bundle loads (it is never unpickled) and "
                                      "copy it into your model library.")
    inst.add_argument("bundle", help="path of the bundle (NAME.json or NAME.safetensors)")
    inst.add_argument("--overwrite", action="store_true", help="replace a bundle of that name")
    inst.set_defaults(func=run_install)


def _accuracy_text(card) -> str:
    for name, acc in (card.accuracy or {}).items():
        if "mean_A" in acc:
            return f"{name}: mean {acc['mean_A']:.3f} Å, p95 {acc['p95_A']:.3f} Å"
        if "mean_deg" in acc:
            return f"{name}: mean {acc['mean_deg']:.3f}°"
    return "not measured"


def run_list(args: argparse.Namespace) -> int:
    from stackview.models.registry import list_models

    entries = list_models()
    if args.json:
        print(json.dumps([{"name": e.name, "source": e.source, "path": str(e.path),
                           "material": e.card.material, "task": e.card.task,
                           "layers": e.card.layers, "backbone": e.card.backbone,
                           "sampling_A": e.card.sampling_A, "patch_px": e.card.patch_px,
                           "accuracy": e.card.accuracy} for e in entries], indent=1))
        return 0
    if not entries:
        print("no model bundles installed")
        return 0
    print(f"{'name':<28} {'material':<8} {'task':<6} {'layers':>6} {'backbone':<10} "
          f"{'Å/px':>6} {'patch':>9}  source   accuracy")
    for e in entries:
        c = e.card
        print(f"{e.name:<28} {c.material:<8} {c.task:<6} {c.layers:>6} {c.backbone:<10} "
              f"{c.sampling_A:6.3f} {c.patch_nm:6.2f} nm  {e.source:<8} {_accuracy_text(c)}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from stackview.models.card import read_card
    from stackview.models.registry import find_model

    card = read_card(find_model(args.bundle))
    data = card.to_dict()
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    conv = data["label_convention"]
    print(f"{card.name}: {card.material} {card.task}, {card.layers} layers, {card.backbone}")
    print(f"  input: {card.sampling_A:g} Å/px, patch {card.patch_px} px = {card.patch_nm:.2f} nm, "
          f"orientation {card.orientation}, style {card.style}")
    print(f"  labels: {', '.join(conv['names'])} ({conv['unit']}); symmetry {conv['symmetry']}")
    lat = conv["lattice"]
    print(f"  lattice: a = {lat['a_A']:.4f} Å along +x, b = {lat['b_A']:.4f} Å, "
          f"gamma = {lat['gamma_deg']:.3f}°")
    if card.training.get("command"):
        print(f"  trained by: {card.training['command']}")
    data_summary = card.training.get("data")
    if data_summary:
        print(f"  training data: {json.dumps(data_summary)}")
    for name, acc in (card.accuracy or {}).items():
        print(f"  accuracy [{name}]: " + ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in acc.items()
            if not isinstance(v, (list, dict, str, bool))))
    if not card.accuracy:
        print("  accuracy: not measured")
    print(f"  stackview {card.stackview_version}, weights {card.weights_dtype}, "
          f"created {card.created}")
    return 0


def run_install(args: argparse.Namespace) -> int:
    from stackview.models.bundle import install_model

    target = install_model(args.bundle, overwrite=args.overwrite)
    print(f"installed {target.name} into {target.parent}")
    return 0

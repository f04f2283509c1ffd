"""``stackview style select|train|translate|evaluate``: the CLI face of the style package.

Start-up stays cheap: torch, scikit-learn and the training code are imported inside the
``run_*`` functions. Lengths are in nm at this surface (``--*-sampling-nm`` in nm/px) and
converted to Å for the library. Bad input raises :class:`stackview.errors.UsageError`, which
the CLI prints as one sentence (exit code 2). No Qt here.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stackview.cli import add_device, add_out
from stackview.errors import UsageError

log = logging.getLogger(__name__)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _nm_to_A(value):
    """nm → Å for a value, None, or a list of values (per-image pixel sizes)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [10.0 * v for v in value] if len(value) > 1 else 10.0 * value[0]
    return 10.0 * value


def _per_file(files, value) -> list:
    """One pixel size (or None) per file from one value for all or a list of one per file."""
    if not isinstance(value, (list, tuple)):
        return [value] * len(files)
    if len(value) == 1:
        return list(value) * len(files)
    if len(value) != len(files):
        raise UsageError(f"give one pixel size for all images or one per image: {len(value)} "
                         f"sizes for {len(files)} images")
    return list(value)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "style",
        help="learn a microscope's style and apply it to simulations (DRIT)",
        description="Trident-enhanced DRIT: select the simulations closest to your experimental "
        "images, train a style model on them, translate simulations into the "
        "microscope's style, and evaluate how experimental they look.",
    )
    sub = p.add_subparsers(dest="style_command", metavar="ACTION", required=True)

    # select ------------------------------------------------------------------------------
    s = sub.add_parser(
        "select",
        help="choose the simulations closest to the experimental images",
        description="Image features, t-SNE to 2-D (perplexity 12), k-means (K = 2): keep the "
        "simulations in the experimental images' cluster, nearest first. Uses "
        "ImageNet VGG16 features when torchvision's weights are in the torch hub "
        "cache, else offline spectral features (the output says which).",
    )
    s.add_argument(
        "--simulations",
        nargs="+",
        required=True,
        metavar="PATH",
        help="noise-free simulated images (files or folders)",
    )
    s.add_argument(
        "--experimental",
        nargs="+",
        required=True,
        metavar="PATH",
        help="experimental images (files or folders)",
    )
    s.add_argument(
        "--sim-sampling-nm",
        type=_positive,
        metavar="NM",
        help="pixel size of the simulations in nm (default: from the files)",
    )
    s.add_argument(
        "--exp-sampling-nm",
        type=_positive,
        nargs="+",
        metavar="NM",
        help="pixel size of the experimental images in nm: one for all, or one per image in "
        "the order given (default: from the files)",
    )
    s.add_argument(
        "--features",
        choices=("auto", "vgg16", "spectral"),
        default="auto",
        help="feature extractor (default: auto)",
    )
    s.add_argument("--perplexity", type=_positive, default=12.0, help="t-SNE perplexity")
    s.add_argument(
        "--keep",
        type=_positive,
        metavar="N",
        help="keep at most N simulations (or a fraction if below 1)",
    )
    s.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    add_out(s, metavar="DIR", help="folder for selection.json and selection.png")
    s.set_defaults(func=run_select)

    # train -------------------------------------------------------------------------------
    t = sub.add_parser(
        "train",
        help="train a DRIT style model",
        description="Train DRIT with affine augmentation and the content-consistency loss on "
        "noise-free simulations (domain A) and experimental images (domain B). "
        "Writes checkpoints, preview images and finally the style bundle "
        "OUT/style.safetensors + OUT/style.json.",
    )
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--simulations",
        nargs="+",
        metavar="PATH",
        help="noise-free simulated images (files or folders)",
    )
    src.add_argument(
        "--selection", metavar="JSON", help="use the simulations chosen by 'style select'"
    )
    t.add_argument(
        "--experimental",
        nargs="+",
        required=True,
        metavar="PATH",
        help="experimental images of the target microscope (files or folders)",
    )
    t.add_argument(
        "--sim-sampling-nm",
        type=_positive,
        metavar="NM",
        help="pixel size of the simulations in nm (default: from the files)",
    )
    t.add_argument(
        "--exp-sampling-nm",
        type=_positive,
        nargs="+",
        metavar="NM",
        help="pixel size of the experimental images in nm: one for all, or one per image in "
        "the order given (default: from the files)",
    )
    t.add_argument(
        "--sampling-nm",
        type=_positive,
        metavar="NM",
        help="pixel size the model works at (default: the experimental images')",
    )
    t.add_argument(
        "--config",
        default="cpu",
        choices=("cpu", "paper", "tiny"),
        help="network size preset (default cpu)",
    )
    t.add_argument("--iterations", type=_count, help="training iterations (default: preset's)")
    t.add_argument("--image-px", type=_count, help="training patch size in pixels")
    t.add_argument("--width", type=_count, help="base channel count of the networks")
    t.add_argument("--batch-size", type=_count, help="images per domain per step")
    t.add_argument(
        "--no-content-consistency",
        action="store_true",
        help="switch off the paper's Eq. (1) loss (ablation)",
    )
    t.add_argument(
        "--consistency-weight",
        type=float,
        metavar="W",
        help="weight of the content-consistency loss (default 1)",
    )
    t.add_argument(
        "--structure-weight",
        type=float,
        metavar="W",
        help="weight of the structure-consistency loss: 1 − NCC of the source and the "
        "translation low-passed over 0.3 Å, which keeps atom columns in place while the style "
        "changes noise, brightness and contrast (default 0: off)",
    )
    t.add_argument(
        "--clip-percentile",
        type=float,
        default=0.0,
        metavar="P",
        help="normalise experimental images between the P and 100-P percentiles "
        "instead of min-max (default 0: min-max, as the paper)",
    )
    t.add_argument("--material", help="material name recorded in the card, e.g. ReS2")
    t.add_argument(
        "--microscope",
        metavar="TEXT",
        help="imaging conditions recorded in the card, e.g. '300 kV, 21.3 mrad, ADF 39-200 mrad'",
    )
    t.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    t.add_argument(
        "--checkpoint-every",
        type=_count,
        default=500,
        metavar="N",
        help="iterations between checkpoints (default 500)",
    )
    t.add_argument(
        "--preview-every",
        type=_count,
        default=250,
        metavar="N",
        help="iterations between preview images, 0 for none (default 250)",
    )
    t.add_argument(
        "--threads",
        type=_count,
        default=1,
        help="torch CPU threads (default 1: on a shared or busy machine more threads "
        "oversubscribe the cores and run several times slower)",
    )
    add_device(t)
    t.add_argument("--resume", action="store_true", help="continue from OUT's checkpoint")
    t.add_argument(
        "--init-from", metavar="PATH",
        help="fine-tune: start from this style checkpoint (folder or file) or bundle of the same "
             "network, with fresh optimisers and schedule (e.g. with a larger "
             "--consistency-weight)",
    )
    add_out(t, metavar="DIR", help="output folder")
    t.set_defaults(func=run_train)

    # translate ---------------------------------------------------------------------------
    r = sub.add_parser(
        "translate",
        help="render simulations in a trained microscope style",
        description="Translate simulated images (files, folders, or .npy/.tif stacks) with a "
        "style bundle. Large images are processed in overlapping tiles. The default "
        "style is the training images' mean; --seed draws a random style, --diverse "
        "a different one per image (reproducible with --seed).",
    )
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders or stacks")
    r.add_argument(
        "--bundle",
        required=True,
        metavar="PATH",
        help="style bundle (NAME.json, NAME.safetensors or their folder)",
    )
    add_out(r, metavar="DIR", help="output folder")
    style = r.add_mutually_exclusive_group()
    style.add_argument("--seed", type=_count, help="random style from this seed")
    style.add_argument(
        "--attribute", metavar="Z1,Z2,...", help="explicit attribute code (comma-separated numbers)"
    )
    r.add_argument(
        "--diverse", action="store_true", help="a different random style for every image"
    )
    r.add_argument(
        "--input-sampling-nm",
        type=_positive,
        metavar="NM",
        help="pixel size of the inputs in nm (resampled to the model's and back)",
    )
    r.add_argument("--tile-px", type=_count, default=1024, help="tile size (default 1024)")
    r.add_argument(
        "--overlap-px",
        type=_count,
        help="tile overlap (default: from the network's receptive field)",
    )
    r.add_argument(
        "--format",
        choices=("png", "tif", "npy"),
        default="png",
        help="output format of single images (default png)",
    )
    add_device(r)
    r.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 convolutions: faster on CPUs with native bf16, ~1%% error",
    )
    r.set_defaults(func=run_translate)

    # evaluate ----------------------------------------------------------------------------
    e = sub.add_parser(
        "evaluate",
        help="compare noise-free, noise-added and DRIT images with experiment",
        description="The paper's Fig. 2 comparison: grey-level KL divergence, line-profile R_a, "
        "power-spectrum distance, PSNR and atom-column displacement of noise-free, "
        "Gaussian-noise, physics-noise and DRIT images against experimental images.",
    )
    e.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="PATH",
        help="style bundle; repeat to compare several (e.g. the ablation)",
    )
    e.add_argument(
        "--simulations",
        nargs="+",
        required=True,
        metavar="PATH",
        help="noise-free simulated test images",
    )
    e.add_argument(
        "--experimental", nargs="+", required=True, metavar="PATH", help="experimental images"
    )
    e.add_argument(
        "--sim-sampling-nm",
        type=_positive,
        metavar="NM",
        help="pixel size of the simulations in nm (default: from the files)",
    )
    e.add_argument(
        "--exp-sampling-nm",
        type=_positive,
        nargs="+",
        metavar="NM",
        help="pixel size of the experimental images in nm: one for all, or one per image in "
        "the order given (default: from the files)",
    )
    e.add_argument(
        "--sampling-nm",
        type=_positive,
        metavar="NM",
        help="common pixel size (default: the first bundle's)",
    )
    e.add_argument(
        "--min-distance-nm",
        type=_positive,
        metavar="NM",
        help="minimum atom-column separation for peak finding (default 0.1)",
    )
    e.add_argument("--seed", type=_count, default=0, help="random seed of the noise baselines")
    add_out(e, metavar="DIR", help="write evaluation.json and evaluation.png here",
            required=False)
    e.add_argument(
        "--update-card",
        action="store_true",
        help="store the DRIT row's metrics in each bundle's card",
    )
    e.set_defaults(func=run_evaluate)


# --------------------------------------------------------------------------- helpers
def _progress(label: str):
    from stackview.engine.jobs import TextProgress

    return TextProgress(label)


def _load_set(paths, own_nm, target_A, clip_percentile=0.0):
    """Load images (list_images expansion) at ``target_A``; returns (names, images, sampling)."""
    from stackview.style.images import list_images, load_normalised

    files = list_images(paths)
    images, sampling = [], None
    for f, nm in zip(files, _per_file(files, own_nm), strict=True):
        img, sampling = load_normalised(
            f, sampling_A=_nm_to_A(nm), target_A=target_A, clip_percentile=clip_percentile
        )
        images.append(img)
    return [str(f) for f in files], images, sampling


def _file_sampling_A(paths, own_nm) -> float | None:
    from stackview.style.images import list_images, read_grey

    if own_nm is not None:
        return _nm_to_A(_per_file(list_images(paths), own_nm)[0])
    return read_grey(list_images(paths)[0])[1]


# --------------------------------------------------------------------------- run functions
def run_select(args: argparse.Namespace) -> int:
    from stackview.style.images import list_images
    from stackview.style.selection import select_files

    exp_files = list_images(args.experimental)
    result = select_files(
        list_images(args.simulations),
        exp_files,
        args.out,
        simulation_sampling_A=_nm_to_A(args.sim_sampling_nm),
        experimental_sampling_A=(None if args.exp_sampling_nm is None else
                                 [_nm_to_A(v) for v in _per_file(exp_files, args.exp_sampling_nm)]),
        features=args.features,
        perplexity=args.perplexity,
        keep=args.keep,
        seed=args.seed,
        progress=_progress("select"),
    )
    print(f"features: {result.feature_kind} — {result.feature_note}")
    print(
        f"perplexity {result.perplexity:g}; experimental cluster {result.experimental_cluster}; "
        f"{len(result.chosen)} of {len(result.simulation_names)} simulations chosen"
        + (" (fallback: nearest)" if result.fallback else "")
    )
    for name in result.chosen_names:
        print(f"  {name}")
    print(f"wrote {Path(args.out) / 'selection.json'} and {Path(args.out) / 'selection.png'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    import torch

    from stackview.style.config import get_preset
    from stackview.style.selection import load_selection
    from stackview.style.trainer import train_style

    if args.threads:
        torch.set_num_threads(args.threads)
    sim_paths = args.simulations
    selection_info = None
    if args.selection:
        sel = load_selection(args.selection)
        sim_paths = sel["chosen"]
        if not sim_paths:
            raise UsageError(f"{args.selection} chose no simulations")
        selection_info = {
            "file": str(args.selection),
            "feature_kind": sel["feature_kind"],
            "n_chosen": len(sim_paths),
            "n_candidates": len(sel["simulations"]),
        }
    exp_A = _file_sampling_A(args.experimental, args.exp_sampling_nm)
    sim_A = _file_sampling_A(sim_paths, args.sim_sampling_nm)
    model_A = _nm_to_A(args.sampling_nm) or exp_A or sim_A
    if model_A is not None and (exp_A is None or sim_A is None):
        raise UsageError(
            "give the pixel size of the images without calibration "
            "(--sim-sampling-nm / --exp-sampling-nm)"
        )
    if model_A is None:
        log.warning(
            "no pixel sizes known: images are used as they are and the model records no sampling"
        )
    cfg = get_preset(args.config)
    changes = {"sampling_A": model_A}
    for key in ("iterations", "image_px", "width", "batch_size"):
        if getattr(args, key):
            changes[key] = getattr(args, key)
    if args.no_content_consistency:
        changes["content_consistency"] = False
    if args.consistency_weight is not None:
        changes["lambda_consistency"] = args.consistency_weight
    if args.structure_weight is not None:
        changes["lambda_structure"] = args.structure_weight
    cfg = cfg.replace(**changes)
    sim_names, sims, _ = _load_set(sim_paths, args.sim_sampling_nm, model_A)
    exp_names, exps, _ = _load_set(
        args.experimental, args.exp_sampling_nm, model_A, args.clip_percentile
    )
    card = {
        "material": args.material,
        "microscope": {"description": args.microscope} if args.microscope else None,
        "selection": selection_info,
        "training": {
            "command": args.command_line,
            "config": args.config,
            "simulations": [Path(n).name for n in sim_names],
            "experimental": [Path(n).name for n in exp_names],
            "torch_threads": torch.get_num_threads(),
        },
    }
    bundle = train_style(
        cfg,
        sims,
        exps,
        args.out,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        checkpoint_every=max(1, args.checkpoint_every),
        preview_every=args.preview_every,
        card=card,
        init_from=args.init_from,
        progress=_progress("train"),
    )
    print(f"style bundle written: {bundle} (+ {bundle.with_suffix('.json').name})")
    return 0


def run_translate(args: argparse.Namespace) -> int:
    from stackview.style.images import list_images
    from stackview.style.translate import StyleTranslator, translate_files

    translator = StyleTranslator.from_bundle(args.bundle, bf16=args.bf16, device=args.device)
    kwargs = {}
    if args.attribute:
        try:
            kwargs["code"] = [float(v) for v in args.attribute.split(",")]
        except ValueError:
            raise UsageError("--attribute must be comma-separated numbers") from None
    written = translate_files(
        translator,
        list_images(args.inputs),
        args.out,
        suffix="." + args.format,
        seed=args.seed,
        diverse=args.diverse,
        input_sampling_A=_nm_to_A(args.input_sampling_nm),
        tile_px=args.tile_px,
        overlap_px=args.overlap_px,
        progress=_progress("translate"),
        **kwargs,
    )
    print(f"translated {len(written)} file(s) into {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from stackview.style.bundle import update_card
    from stackview.style.evaluate import evaluate_style
    from stackview.style.translate import StyleTranslator

    translators = {}
    for path in args.bundle:
        tr = StyleTranslator.from_bundle(path)
        cfg = tr.model.cfg
        label = f"DRIT {tr.card.get('name', Path(path).stem)}"
        if not cfg.content_consistency:
            label += " (no Eq.1)"
        if label in translators:  # two bundles of the same name: tell them apart by path
            label += f" [{Path(path).parent.name}/{Path(path).name}]"
        translators[label] = tr
    first = next(iter(translators.values()), None)
    target_A = _nm_to_A(args.sampling_nm) or (first.sampling_A if first else None)
    if target_A is None:
        target_A = _file_sampling_A(args.experimental, args.exp_sampling_nm)
    _, sims, _ = _load_set(args.simulations, args.sim_sampling_nm, target_A)
    _, exps, _ = _load_set(args.experimental, args.exp_sampling_nm, target_A)
    ev = evaluate_style(
        sims,
        exps,
        translators,
        sampling_A=target_A,
        min_distance_px=(
            10 * args.min_distance_nm / target_A if args.min_distance_nm and target_A else None
        ),
        seed=args.seed,
        progress=_progress("evaluate"),
    )
    print(ev.table())
    if args.out:
        out = Path(args.out)
        ev.save_json(out / "evaluation.json")
        ev.figure(out / "evaluation.png")
        print(f"wrote {out / 'evaluation.json'} and {out / 'evaluation.png'}")
    if args.update_card:
        for (label, tr), path in zip(translators.items(), args.bundle, strict=True):
            update_card(
                path,
                metrics={
                    "evaluation": {
                        "drit": ev.rows[label],
                        "noise_free": ev.rows["noise-free"],
                        "gaussian": ev.rows["gaussian"],
                        "physics": ev.rows["physics"],
                        "n_simulations": len(sims),
                        "n_experimental": len(exps),
                    }
                },
            )
            del tr
    return 0

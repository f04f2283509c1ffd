"""``stackview style select|train|translate|evaluate``: the CLI face of the style package.

The jobs are those of :mod:`stackview.workflows.style` (``*_job(args)`` makes one; the
``run_*`` functions run it and print). Start-up stays cheap: torch, scikit-learn and the
training code are imported inside the workflows. Lengths are in nm at this surface
(``--*-sampling-nm`` in nm/px) and converted to Å for the library. Bad input raises
:class:`stackview.errors.UsageError`, which the CLI prints as one sentence (exit code 2). No
Qt here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stackview.cli import add_device, add_out


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
    s.add_argument("--min-keep", type=_count, default=1, metavar="N",
                   help="keep at least N simulations (default 1)")
    s.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    add_out(s, metavar="DIR", help="folder for selection.json and selection.png")
    s.set_defaults(func=run_select, job=select_job)

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
        "--log-every",
        type=_count,
        default=50,
        metavar="N",
        help="iterations between the losses logged to OUT/history.json (default 50)",
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
    t.set_defaults(func=run_train, job=train_job, cancelled=lambda args: (
        f"a checkpoint is in {args.out} (continue with --resume)"))

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
    r.set_defaults(func=run_translate, job=translate_job)

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
    e.set_defaults(func=run_evaluate, job=evaluate_job)


# --------------------------------------------------------------------------- jobs
def _progress(label: str):
    from stackview.engine.jobs import TextProgress

    return TextProgress(label)


def select_job(args: argparse.Namespace):
    """The :class:`~stackview.workflows.style.StyleSelectJob` of ``style select`` arguments."""
    from stackview.workflows.style import StyleSelectJob

    return StyleSelectJob(
        simulations=tuple(args.simulations), experimental=tuple(args.experimental),
        out=args.out, sim_sampling_nm=args.sim_sampling_nm,
        exp_sampling_nm=args.exp_sampling_nm, features=args.features,
        perplexity=args.perplexity, keep=args.keep, min_keep=args.min_keep, seed=args.seed)


def train_job(args: argparse.Namespace):
    """The :class:`~stackview.workflows.style.StyleTrainJob` of ``style train`` arguments."""
    from stackview.workflows.style import StyleTrainJob

    return StyleTrainJob(
        experimental=tuple(args.experimental), out=args.out,
        simulations=tuple(args.simulations or ()), selection=args.selection,
        sim_sampling_nm=args.sim_sampling_nm, exp_sampling_nm=args.exp_sampling_nm,
        sampling_nm=args.sampling_nm, config=args.config, iterations=args.iterations,
        image_px=args.image_px, width=args.width, batch_size=args.batch_size,
        content_consistency=not args.no_content_consistency,
        consistency_weight=args.consistency_weight, structure_weight=args.structure_weight,
        clip_percentile=args.clip_percentile, material=args.material,
        microscope=args.microscope, seed=args.seed, checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every, log_every=args.log_every, threads=args.threads,
        device=args.device, resume=args.resume, init_from=args.init_from)


def translate_job(args: argparse.Namespace):
    """The :class:`~stackview.workflows.style.StyleTranslateJob` of ``style translate``
    arguments."""
    from stackview.workflows.style import StyleTranslateJob

    return StyleTranslateJob(
        inputs=tuple(args.inputs), bundle=args.bundle, out=args.out, seed=args.seed,
        attribute=args.attribute, diverse=args.diverse,
        input_sampling_nm=args.input_sampling_nm, tile_px=args.tile_px,
        overlap_px=args.overlap_px, format=args.format, device=args.device, bf16=args.bf16)


def evaluate_job(args: argparse.Namespace):
    """The :class:`~stackview.workflows.style.StyleEvaluateJob` of ``style evaluate``
    arguments."""
    from stackview.workflows.style import StyleEvaluateJob

    return StyleEvaluateJob(
        simulations=tuple(args.simulations), experimental=tuple(args.experimental),
        bundles=tuple(args.bundle), sim_sampling_nm=args.sim_sampling_nm,
        exp_sampling_nm=args.exp_sampling_nm, sampling_nm=args.sampling_nm,
        min_distance_nm=args.min_distance_nm, seed=args.seed, out=args.out,
        update_card=args.update_card)


# --------------------------------------------------------------------------- run functions
def run_select(args: argparse.Namespace) -> int:
    from stackview.workflows.style import select_style_simulations

    result = select_style_simulations(select_job(args), progress=_progress("select"),
                                      cancel=args.cancel)
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
    from stackview.workflows.style import train_style_model

    bundle = train_style_model(train_job(args), command=args.command_line,
                               progress=_progress("train"), cancel=args.cancel)
    print(f"style bundle written: {bundle} (+ {bundle.with_suffix('.json').name})")
    return 0


def run_translate(args: argparse.Namespace) -> int:
    from stackview.workflows.style import translate_style

    written = translate_style(translate_job(args), progress=_progress("translate"),
                              cancel=args.cancel)
    print(f"translated {len(written)} file(s) into {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from stackview.workflows.style import evaluate_style_models

    ev = evaluate_style_models(evaluate_job(args), progress=_progress("evaluate"),
                               cancel=args.cancel)
    print(ev.table())
    if args.out:
        out = Path(args.out)
        print(f"wrote {out / 'evaluation.json'} and {out / 'evaluation.png'}")
    return 0

"""``stackview train``, ``stackview evaluate`` and ``stackview study`` (no Qt; torch is imported
only inside the run functions, so the CLI starts fast). The jobs are those of
:mod:`stackview.workflows.train` and :mod:`stackview.workflows.evaluate`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from stackview.cli import add_device, add_out


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_evaluate(subparsers)
    _register_study(subparsers)


def _add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--backbone", default="resnet50",
                   help="torchvision backbone (paper: resnet50; resnet18 for CPUs)")
    g.add_argument("--head", choices=("auto", "direct", "invariant"), default="auto",
                   help="output head: 'direct' regresses the labels (paper); 'invariant' "
                        "predicts symmetry-invariant features of the slip or twist (learns much "
                        "faster); 'auto' picks invariant")
    g.add_argument("--context", type=int, default=0, metavar="PX",
                   help="train for dense maps: each patch is a window with this many pixels of "
                        "image around it on every side, which the model sees but does not read "
                        "(ResNet: a multiple of 32; the window is the patch less the margin)")
    g.add_argument("--window-px", type=int, default=0, metavar="PX",
                   help="with --context: the model's window (default: the patch less the "
                        "margin); larger patches show the model a random extra margin in "
                        "training, so that what lies beyond --context does not matter")
    g.add_argument("--context-consistency", type=float, default=0.0, metavar="W",
                   help="with --context: read every patch also with a larger margin and add W "
                        "times the squared difference of the two readings to the loss, so that "
                        "dense maps equal window maps (doubles the cost of a step; e.g. 10)")
    g.add_argument("--label-error-weight", type=float, default=0.0, metavar="W",
                   help="invariant heads: add W times the loss of the feature error read as a "
                        "label error (one Gauss-Newton step from the truth), which weighs "
                        "stackings near a symmetry's fixed point (e.g. AA) up; e.g. 0.3")
    g.add_argument("--consistency-label-weight", type=float, default=0.0, metavar="W",
                   help="invariant heads with --context: also read every patch with a larger "
                        "margin and add W times the squared difference of the two readings "
                        "read as label errors (Å or degrees), which holds twist maps, whose "
                        "features change little per degree (doubles the cost of a step)")
    g.add_argument("--teacher", metavar="BUNDLE",
                   help="a trained model of the same material and head whose reading of each "
                        "patch's isolated window every reading is pulled to (with --context: "
                        "learn to ignore the image around the window without forgetting what "
                        "the teacher knew; a third more work per step)")
    g.add_argument("--teacher-weight", type=float, default=0.0, metavar="W",
                   help="with --teacher: W times the squared difference from the teacher's "
                        "outputs is added to the loss (default with a teacher: 100)")
    g.add_argument("--freeze-through", default="", metavar="PART",
                   help="keep the backbone's weights and batch-norm statistics up to and "
                        "including this part (ResNet: conv1, bn1, layer1 … layer4), so a "
                        "fine-tune keeps what the early filters know and its steps cost less; "
                        "e.g. layer2")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=10000, help="optimiser steps")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    g.add_argument("--warmup", type=int, default=-1,
                   help="warm-up steps (default: 2 %% of --steps, as the paper's 60/3000)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    g.add_argument("--no-channels-last", action="store_true",
                   help="keep the default memory format")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    g.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS")
    g.add_argument("--validate-every", type=int, default=0, metavar="STEPS",
                   help="log the validation error this often (0: at checkpoints)")
    g = p.add_argument_group("online augmentation")
    g.add_argument("--augment-psnr", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="Gaussian noise with PSNR (dB) in this range on half of the patches")
    g.add_argument("--augment-masks", type=float, default=0.0, metavar="PROB")
    g.add_argument("--augment-contamination", type=float, default=0.0, metavar="PROB")
    g.add_argument("--augment-gamma", type=float, nargs=2, default=(1.0, 1.0),
                   metavar=("LOW", "HIGH"), help="random contrast (gamma) range")


def _register_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a stacking regressor on a dataset into a model bundle",
        description="Train the slip/twist regressor (symmetry-aware MSE + 0.5 L1, Adam, "
                    "linear warm-up and decay) on a dataset from 'stackview dataset make' and "
                    "write a model bundle (NAME.safetensors + NAME.json). Checkpoints go to "
                    "--checkpoint-dir; --resume continues from there. Under torchrun the "
                    "ranks train with DDP.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", required=True, nargs="+", metavar="DATASET",
                   help="training dataset (NAME.zarr); several of one material, task and "
                        "sampling (e.g. physics-noise and DRIT-styled) are mixed")
    add_out(p, help="bundle path without suffix (e.g. models/ReS2)")
    p.add_argument("--validation", help="held-out dataset logged during training")
    p.add_argument("--eval-dataset", nargs="+", metavar="DATASET",
                   help="held-out test dataset(s); the accuracy on each is measured and written "
                        "to the card under its name")
    p.add_argument("--checkpoint-dir",
                   help="checkpoint folder (default: OUT.checkpoints next to the bundle)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: start from this bundle (name or path) or checkpoint folder "
                        "made for the same task and architecture (of this material, or of a "
                        "related one to transfer, e.g. ReS2 to ReSe2)")
    p.add_argument("--description", default="", help="free text for the card")
    p.add_argument("--fp32-weights", action="store_true",
                   help="store fp32 weights in the bundle (default: fp16 parameters)")
    _add_train_options(p)
    p.set_defaults(func=run_train, job=train_job_from_args, cancelled=lambda args: (
        f"a checkpoint is in {train_job_from_args(args).checkpoints} (continue with --resume)"))


def _register_evaluate(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="measure a model bundle's accuracy on a labelled dataset",
        description="Predict a labelled dataset with a bundle and report symmetry-aware errors: "
                    "ΔD mean/median/95th percentile and per-axis errors for slip, the twist "
                    "error and the θ vs 60°−θ confusion rate for twist; writes metrics.json, "
                    "predictions.csv and errors.png.",
    )
    p.add_argument("bundle", help="bundle name or path")
    p.add_argument("--dataset", required=True, help="labelled test dataset (NAME.zarr)")
    add_out(p, help="report folder (default: print only)", required=False)
    p.add_argument("--tta", action="store_true", help="average test-time augmented views")
    p.add_argument("--max-samples", type=int, help="evaluate only the first N patches")
    p.add_argument("--update-card", metavar="NAME",
                   help="store the metrics in the bundle's card under this name")
    add_device(p)
    p.set_defaults(func=run_evaluate, job=evaluate_job_from_args)


_STUDY_CANCELLED = "finished points are kept in the output folder"


def _register_study(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="the paper's robustness and grid-step studies",
        description="Robustness of a model to vacancies (0 to 10 %%) and noise (PSNR 30 to 7) on "
                    "fresh test sets styled like its training data, and the training-grid-step "
                    "study (0.1 to 0.4 Å against a 0.05 Å test grid). Long runs; each writes "
                    "JSON and a box plot.",
    )
    sub = p.add_subparsers(dest="study", metavar="STUDY", required=True)
    for name, helptext in (("defects", "ΔD against the vacancy ratio"),
                           ("psnr", "ΔD against the image PSNR")):
        s = sub.add_parser(name, help=helptext, description=helptext + ".")
        s.add_argument("bundle", help="bundle name or path")
        add_out(s, help="output folder")
        s.add_argument("--n", type=int, default=500, help="test patches per point")
        s.add_argument("--seed", type=int, default=9001 if name == "defects" else 9002)
        if name == "defects":
            s.add_argument("--ratios", type=float, nargs="+",
                           default=[0.0, 0.02, 0.04, 0.06, 0.08, 0.10])
        else:
            s.add_argument("--psnr", type=float, nargs="+",
                           default=[30.0, 25.0, 20.0, 15.0, 10.0, 7.0])
        s.add_argument("--scheduler", default="threads")
        s.add_argument("--workers", type=int)
        s.set_defaults(func=run_study, cancelled=_STUDY_CANCELLED)
    s = sub.add_parser(
        "train-step", help="accuracy against the training-grid step",
        description="Train one model per slip-grid step and test all on a finer grid (the "
                    "paper's Fig. 3b). The training data use the 'dataset make' settings "
                    "below.",
    )
    add_out(s, help="output folder")
    s.add_argument("--grid-steps", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4])
    s.add_argument("--test-step", type=float, default=0.05)
    s.add_argument("--material", default="ReS2")
    s.add_argument("--layers", type=int, default=2)
    s.add_argument("--count", type=int, default=1, help="patches per grid point")
    s.add_argument("--sampling", type=float, default=0.16)
    s.add_argument("--patch-px", type=int, default=128)
    s.add_argument("--style", choices=("clean", "physics", "drit"), default="clean")
    s.add_argument("--style-bundle", default="")
    s.add_argument("--data-seed", type=int, default=0)
    s.add_argument("--scheduler", default="threads")
    s.add_argument("--workers", type=int)
    _add_train_options(s)
    s.set_defaults(func=run_study, cancelled=_STUDY_CANCELLED)


def _train_config(args):
    from stackview.inference.train import TrainConfig

    augment = {}
    if args.augment_psnr:
        augment["psnr_range_dB"] = tuple(args.augment_psnr)
    if args.augment_masks:
        augment["mask_probability"] = args.augment_masks
    if args.augment_contamination:
        augment["contamination_probability"] = args.augment_contamination
    if tuple(args.augment_gamma) != (1.0, 1.0):
        augment["gamma_range"] = tuple(args.augment_gamma)
    return TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup,
        checkpoint_every=args.checkpoint_every, seed=args.seed, precision=args.precision,
        channels_last=not args.no_channels_last, threads=args.threads, augment=augment,
        validate_every=args.validate_every, context_consistency=args.context_consistency,
        label_error_weight=args.label_error_weight,
        consistency_label_weight=args.consistency_label_weight,
        teacher_weight=args.teacher_weight or (100.0 if args.teacher else 0.0),
        freeze_through=args.freeze_through,
    )


def train_job_from_args(args: argparse.Namespace):
    """The :class:`~stackview.workflows.train.TrainJob` of ``train`` arguments."""
    from stackview.workflows.train import TrainJob

    return TrainJob(
        datasets=tuple(args.dataset), out=args.out, backbone=args.backbone, head=args.head,
        config=_train_config(args), validation=args.validation,
        eval_datasets=tuple(args.eval_dataset or ()), checkpoint_dir=args.checkpoint_dir,
        resume=args.resume, init_from=args.init_from, description=args.description,
        fp32_weights=args.fp32_weights, context_px=args.context,
        window_px=args.window_px, teacher=args.teacher)


def evaluate_job_from_args(args: argparse.Namespace):
    """The :class:`~stackview.workflows.evaluate.EvaluateJob` of ``evaluate`` arguments."""
    from stackview.workflows.evaluate import EvaluateJob

    return EvaluateJob(bundle=args.bundle, dataset=args.dataset, out=args.out, tta=args.tta,
                       max_samples=args.max_samples, update_card=args.update_card,
                       device=args.device)


def _head(args) -> str:
    return "invariant" if args.head == "auto" else args.head


def run_train(args: argparse.Namespace) -> int:
    from stackview.engine.jobs import TextProgress, null_progress
    from stackview.workflows.train import train_model

    rank = int(os.environ.get("RANK", "0"))
    out = train_model(train_job_from_args(args), command=args.command_line,
                      progress=TextProgress("train") if rank == 0 else null_progress,
                      cancel=args.cancel, eval_progress=TextProgress("evaluate"))
    if out.bundle is None:
        return 0
    r = out.result
    print(f"wrote {out.weights} and {out.weights.with_suffix('.json')} "
          f"({r.seconds:.0f} s, {r.images_per_s:.1f} images/s)")
    for name, m in out.accuracy.items():
        print(f"{name}: " + _metrics_line(m))
    return 0


def _metrics_line(m: dict) -> str:
    if "mean_A" in m:
        family = (f"; family right in {100 * m['family_accuracy']:.2f} %"
                  if "family_accuracy" in m else "")
        return (f"ΔD mean {m['mean_A']:.4f} Å, median {m['median_A']:.4f} Å, "
                f"95% {m['p95_A']:.4f} Å over {m['n']} patches{family}")
    return (f"twist error mean {m['mean_deg']:.3f}°, median {m['median_deg']:.3f}°, "
            f"95% {m['p95_deg']:.3f}°; θ/60°−θ confusions {m['confusions']}/"
            f"{m['confusion_candidates']} over {m['n']} patches")


def run_evaluate(args: argparse.Namespace) -> int:
    from stackview.engine.jobs import TextProgress
    from stackview.workflows.evaluate import evaluate_model

    res = evaluate_model(evaluate_job_from_args(args), progress=TextProgress("evaluate"),
                         cancel=args.cancel)
    m = res["metrics"]
    print(_metrics_line(m))
    if res["report"]:
        print(f"wrote {res['report']}, predictions.csv and errors.png in {Path(args.out)}")
    else:
        print(json.dumps({k: v for k, v in m.items() if k != "dataset"}, indent=1))
    return 0


def run_study(args: argparse.Namespace) -> int:
    from stackview.engine.jobs import TextProgress
    from stackview.inference import evaluate as ev

    cancel = args.cancel
    if args.study == "defects":
        summary = ev.study_defects(args.bundle, args.out, ratios=tuple(args.ratios),
                                   n=args.n, seed=args.seed, scheduler=args.scheduler,
                                   workers=args.workers, progress=TextProgress("study"),
                                   cancel=cancel)
    elif args.study == "psnr":
        summary = ev.study_psnr(args.bundle, args.out, psnrs=tuple(args.psnr), n=args.n,
                                seed=args.seed, scheduler=args.scheduler,
                                workers=args.workers, progress=TextProgress("study"),
                                cancel=cancel)
    else:
        from stackview.datasets.spec import DatasetSpec
        from stackview.inference.regressor import RegressorSpec

        base = DatasetSpec(task="slip", material=args.material, layers=args.layers,
                           mode="grid", count=args.count, sampling_A=args.sampling,
                           patch_px=args.patch_px, style=args.style,
                           style_bundle=args.style_bundle, seed=args.data_seed)
        rspec = RegressorSpec(backbone=args.backbone, task="slip",
                              material=base.material, layers=args.layers,
                              head=_head(args))
        summary = ev.study_train_step(
            args.out, base, rspec, _train_config(args), steps_A=tuple(args.grid_steps),
            test_step_A=args.test_step, scheduler=args.scheduler, workers=args.workers,
            progress=TextProgress("study"), cancel=cancel)
    for row in summary["results"]:
        key = next(iter(row))
        print(f"{key} {row[key]:g}: " + _metrics_line(row))
    print(f"wrote {Path(args.out) / ('study_' + summary['study'] + '.json')} and the box plot")
    return 0

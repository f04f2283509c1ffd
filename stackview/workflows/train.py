"""``stackview train`` as a function: a :class:`TrainJob`, its command line, and the one place a
model card is built (:func:`model_card`), so the CLI and the wizard write the same card."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from stackview.engine.jobs import null_progress
from stackview.errors import UsageError
from stackview.inference.train import TrainConfig
from stackview.workflows.commandline import words

HEADS = ("auto", "direct", "invariant")
#: keys of an accuracy entry a fine-tuned model's card keeps from its start
_ACCURACY_KEYS = ("n", "mean_A", "median_A", "p95_A", "mean_deg", "median_deg", "p95_deg",
                  "confusions")


@dataclass(frozen=True)
class TrainJob:
    """A regressor to train: the data, the bundle it becomes and the optimisation."""

    datasets: tuple[str, ...]
    out: str
    backbone: str = "resnet50"
    head: str = "auto"
    config: TrainConfig = field(default_factory=TrainConfig)
    validation: str | None = None
    eval_datasets: tuple[str, ...] = ()
    checkpoint_dir: str | None = None
    resume: bool = False
    init_from: str | None = None
    description: str = ""
    fp32_weights: bool = False
    #: pixels of each training field around its central window that the model reads as
    #: context (:class:`stackview.inference.regressor.RegressorSpec`); the window is the
    #: field less this margin on every side
    context_px: int = 0
    #: with context: the window (pixels); default the patch less the margin on every side.
    #: Patches larger than the window and its margin show the model more context in training
    #: (a random amount per step), so that what lies beyond the margin does not matter
    window_px: int = 0
    #: a bundle whose reading of each patch's isolated window the model is pulled to
    #: (:mod:`stackview.inference.teacher`; ``config.teacher_weight`` > 0 with it)
    teacher: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(str(d) for d in self.datasets))
        object.__setattr__(self, "eval_datasets", tuple(str(d) for d in self.eval_datasets))
        object.__setattr__(self, "out", str(self.out))
        if not self.datasets:
            raise UsageError("give at least one training dataset")
        if self.head not in HEADS:
            raise UsageError(f"the head must be one of {', '.join(HEADS)}")
        if self.context_px < 0:
            raise UsageError("the context margin cannot be negative")
        if bool(self.teacher) != (self.config.teacher_weight > 0):
            raise UsageError("--teacher-weight needs --teacher" if not self.teacher else
                             "a teacher needs a teacher weight above 0")

    @property
    def resolved_head(self) -> str:
        return "invariant" if self.head == "auto" else self.head

    @property
    def checkpoints(self) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else Path(self.out + ".checkpoints")


def train_argv(job: TrainJob) -> list[str]:
    """The ``train`` arguments that run ``job``."""
    c, default = job.config, TrainConfig()
    if c.weight_decay != default.weight_decay:
        raise UsageError("the command line cannot set weight_decay; keep its default")
    argv = ["train", "--dataset", *job.datasets, "--out", job.out]
    if job.validation:
        argv += ["--validation", str(job.validation)]
    if job.eval_datasets:
        argv += ["--eval-dataset", *job.eval_datasets]
    if job.checkpoint_dir:
        argv += ["--checkpoint-dir", str(job.checkpoint_dir)]
    if job.init_from:
        argv += ["--init-from", str(job.init_from)]
    if job.description:
        argv += ["--description", job.description]
    if job.teacher:
        argv += ["--teacher", str(job.teacher)]
    if job.context_px:
        argv += words("--context", job.context_px)
    if job.window_px:
        argv += words("--window-px", job.window_px)
    argv += words("--backbone", job.backbone, "--head", job.head, "--steps", c.steps,
                  "--batch-size", c.batch_size, "--lr", float(c.lr), "--warmup", c.warmup_steps,
                  "--seed", c.seed, "--precision", c.precision, "--threads", c.threads,
                  "--checkpoint-every", c.checkpoint_every, "--validate-every", c.validate_every)
    if c.context_consistency:
        argv += words("--context-consistency", float(c.context_consistency))
    if c.label_error_weight:
        argv += words("--label-error-weight", float(c.label_error_weight))
    if c.consistency_label_weight:
        argv += words("--consistency-label-weight", float(c.consistency_label_weight))
    if c.teacher_weight:
        argv += words("--teacher-weight", float(c.teacher_weight))
    if c.freeze_through:
        argv += words("--freeze-through", c.freeze_through)
    aug = dict(c.augment)
    if "psnr_range_dB" in aug:
        argv += words("--augment-psnr", *map(float, aug.pop("psnr_range_dB")))
    for key, flag in (("mask_probability", "--augment-masks"),
                      ("contamination_probability", "--augment-contamination")):
        if key in aug:
            argv += words(flag, float(aug.pop(key)))
    if "gamma_range" in aug:
        argv += words("--augment-gamma", *map(float, aug.pop("gamma_range")))
    if aug:
        raise UsageError(f"the command line cannot set the augmentation {', '.join(sorted(aug))}")
    if not c.channels_last:
        argv.append("--no-channels-last")
    if job.fp32_weights:
        argv.append("--fp32-weights")
    if job.resume:
        argv.append("--resume")
    return argv


def context_window_px(job: TrainJob, patch_px: int) -> int:
    """The window of a model trained with context on ``patch_px`` patches (0 without)."""
    if not job.context_px:
        if job.window_px:
            raise UsageError("--window-px is for models trained with --context")
        return 0
    window = job.window_px or patch_px - 2 * job.context_px
    if window < 8 or window + 2 * job.context_px > patch_px:
        raise UsageError(f"the {patch_px} px patches do not hold a {window} px window with "
                         f"{job.context_px} px of context on every side")
    return window


def in_memory_limit_bytes() -> int:
    """How much training data is read into memory rather than streamed: a quarter of the
    machine's memory (random batches from a stream decompress a whole chunk per patch)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        total = 16 << 30
    return max(1 << 30, total // 4)


def open_source(ds, limit_bytes: int | None = None):
    """Load small datasets into memory; stream large ones chunk by chunk."""
    limit = in_memory_limit_bytes() if limit_bytes is None else limit_bytes
    return ds.load() if ds.nbytes <= limit else ds


def init_summary(source: str) -> dict:
    """What a fine-tuned model started from, for its card."""
    from stackview.inference.train import CHECKPOINT_STATE
    from stackview.models.card import read_card
    from stackview.models.registry import find_model

    path = Path(source)
    if (path / CHECKPOINT_STATE).is_file():
        state = json.loads((path / CHECKPOINT_STATE).read_text(encoding="utf-8"))
        return {"checkpoint": path.name, "step": state["step"], "config": state["config"],
                "history": state.get("history", [])[-5:]}
    card = read_card(find_model(source))
    return {"bundle": card.name, "material": card.material, "style": card.style,
            "command": card.training.get("command"), "seconds": card.training.get("seconds"),
            # what the start measured, so the card shows what the fine-tune changed
            "accuracy": {name: {k: m[k] for k in _ACCURACY_KEYS if k in m}
                         for name, m in (card.accuracy or {}).items()}}


def device_text() -> str:
    """Where training ran, for the card."""
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return (f"CPU ({platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} threads)")


def model_card(job: TrainJob, parts, spec, result, command: str | None):
    """The card of the bundle ``job`` trains: the only place one is built (CLI and wizard)."""
    import torch

    from stackview.datasets.store import mixture_style, mixture_summary
    from stackview.models.card import ModelCard

    ds = parts[0]
    return ModelCard(
        name=Path(job.out).name, spec=spec.to_dict(), sampling_A=ds.sampling_A,
        patch_px=spec.window_px or ds.patch_px, orientation=ds.spec.orientation, style=mixture_style(parts),
        description=job.description,
        training={
            "command": command, "config": dataclasses.asdict(job.config),
            "data": mixture_summary(parts), "dataset_spec": ds.attrs["spec"],
            "seconds": round(result.seconds, 1), "images_per_s": round(result.images_per_s, 2),
            "precision": result.precision, "device": device_text(), "torch": torch.__version__,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "history": result.history[-20:],
            **({"init_from": init_summary(job.init_from)} if job.init_from else {}),
            **({"teacher": init_summary(job.teacher)} if job.teacher else {}),
        },
    )


@dataclass
class TrainOutcome:
    """What :func:`train_model` made: the bundle (``None`` on a non-zero DDP rank), its card,
    the training result and the accuracy measured on ``eval_datasets``."""

    bundle: Path | None
    weights: Path | None
    card: object | None
    result: object
    accuracy: dict = field(default_factory=dict)


def train_model(job: TrainJob, command: str | None = None, progress=null_progress, cancel=None,
                eval_progress=null_progress) -> TrainOutcome:
    """Train, write the bundle with its card (``command`` recorded in it), then measure each
    ``eval_datasets`` entry and store it in the card under the dataset's name. Raises
    :class:`~stackview.errors.Cancelled` when cancelled (a checkpoint is kept)."""
    from stackview.datasets.store import ConcatSource, check_mixable, open_dataset
    from stackview.inference.regressor import RegressorSpec
    from stackview.inference.train import train
    from stackview.models.bundle import save_bundle, update_card

    parts = [open_dataset(p) for p in job.datasets]
    check_mixable(parts)
    dspec = parts[0].spec
    source = (open_source(parts[0]) if len(parts) == 1 else ConcatSource(
        [open_source(p, in_memory_limit_bytes() // len(parts)) for p in parts]))
    spec = RegressorSpec(backbone=job.backbone, task=dspec.task, material=dspec.material,
                         layers=dspec.layers, family=dspec.family, head=job.resolved_head,
                         context_px=job.context_px,
                         window_px=context_window_px(job, parts[0].patch_px))
    validation = open_dataset(job.validation) if job.validation else None
    if job.teacher:
        from stackview.inference.teacher import load_teacher

        load_teacher(job.teacher, spec, parts[0].sampling_A)  # its errors before any work
    result = train(spec, source, job.config, out_dir=job.checkpoints, resume=job.resume,
                   validation=validation, progress=progress, cancel=cancel,
                   init_from=job.init_from, teacher=job.teacher)
    if int(os.environ.get("RANK", "0")) != 0:
        return TrainOutcome(None, None, None, result)
    card = model_card(job, parts, spec, result, command)
    weights = save_bundle(job.out, result.model, card, half=not job.fp32_weights)
    accuracy = {}
    if job.eval_datasets:
        from stackview.inference.evaluate import evaluate_bundle

        for test in job.eval_datasets:
            m = evaluate_bundle(job.out, test, progress=eval_progress, cancel=cancel,
                                device="auto")["metrics"]
            accuracy[Path(test).stem] = m
            card = update_card(job.out, accuracy={Path(test).stem: m})
    return TrainOutcome(Path(job.out), weights, card, result, accuracy)

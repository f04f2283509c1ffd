"""Training loop of the stacking regressor (torch; no Qt).

:func:`train` is a job (``progress``, ``cancel``): Adam, a linear learning-rate warm-up followed by
a linear decay to zero (the paper's schedule, counted in steps), batch 32 by default, the
symmetric loss of :mod:`stackview.inference.loss`, optional bf16 autocast and channels-last memory
format, optional online augmentation (:mod:`stackview.datasets.augment`), checkpoints every N
steps and exact resume, and DDP when launched under ``torchrun`` (``WORLD_SIZE`` > 1).

Determinism: the initial weights come from ``seed``; the sample order of epoch ``e`` is a
permutation drawn from ``(seed, e)``; the online augmentation of step ``s`` on rank ``r`` is drawn
from ``(seed, s, r)``. Nothing depends on wall-clock or on the history of a random generator, so a
run resumed from a checkpoint continues exactly as the uninterrupted run would (on the same
hardware and thread count).

Checkpoints are ``checkpoint.safetensors`` (model weights, buffers and Adam moments) plus
``checkpoint.json`` (spec, configuration, step, history), both written atomically; the step is
recorded in both and checked on resume.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import Cancelled, UsageError
from stackview.inference.checkpoint import (  # noqa: F401  (re-exported: the training API)
    CHECKPOINT_STATE,
    CHECKPOINT_WEIGHTS,
    _restore,
    _unwrap,
    initial_weights,
    load_checkpoint,
    save_checkpoint,
)
from stackview.inference.loss import RawOutputLoss, linearised_label_error
from stackview.inference.regressor import RegressorSpec, StackingRegressor, build_regressor

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")


class PatchSource(Protocol):
    """What training reads: ``len()`` samples; ``get(indices)`` gives images (B, H, W) and
    labels (B, n)."""

    def __len__(self) -> int: ...

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper: Adam, batch 32, peak lr 1e-3, warm-up 2 % of the run).

    Parameters
    ----------
    steps
        Number of optimiser steps (each sees ``batch_size`` images, summed over DDP ranks).
    batch_size
        Global batch size.
    lr
        Peak learning rate.
    warmup_steps
        Linear warm-up length; the rate then decays linearly to zero at ``steps``.
    weight_decay
        Adam's L2 weight decay.
    checkpoint_every
        Save a checkpoint every this many steps (0: only at the end).
    seed
        Seed of the weights, the sample order and the online augmentation.
    precision
        ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"`` (bf16 where the device supports it).
    channels_last
        Use the channels-last memory format (faster convolutions on recent CPUs).
    threads
        torch intra-op threads on CPU (0: leave torch's default).
    augment
        Online augmentation settings (a dict for :class:`stackview.datasets.augment.OnlineAugment`;
        empty: none).
    validate_every
        Evaluate the validation source every this many steps (0: only at checkpoints).
    context_consistency
        Models that read context: each step also reads every patch with a larger margin
        (a random one, up to all the patch holds) and adds this weight times the mean squared
        difference of the two raw outputs to the loss, so that the reading at the model's own
        margin equals the reading with the whole image around (what the dense mode sees).
        0: one random margin per step, no second reading.
    label_error_weight
        Invariant heads: weight of the feature error read as a label error
        (:func:`stackview.inference.loss.linearised_label_error`) in the loss; 0: features only.
    consistency_label_weight
        Context models: ``context_consistency`` on the label errors (Å, °). 0: features only.
    freeze_through
        Name of a backbone part (e.g. ``"layer2"`` of a ResNet): it and every part before it
        keep their weights and batch-norm statistics (fine-tunes that must not forget what the
        early, local filters know; the backward pass then stops there). Empty: train all.
    teacher_weight
        With a teacher (``train(teacher=...)``): this weight times the mean squared difference
        between each reading's raw outputs and the teacher's of the isolated window is added to
        the loss (:mod:`stackview.inference.teacher`); 0: no teacher.
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = -1
    weight_decay: float = 0.0
    checkpoint_every: int = 500
    seed: int = 0
    precision: str = "auto"
    channels_last: bool = True
    threads: int = 0
    augment: dict = field(default_factory=dict)
    validate_every: int = 0
    context_consistency: float = 0.0
    label_error_weight: float = 0.0
    consistency_label_weight: float = 0.0
    teacher_weight: float = 0.0
    freeze_through: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UsageError("training needs at least one step")
        if self.batch_size < 1:
            raise UsageError("the batch size must be at least 1")
        if not (0 < self.lr <= 1):
            raise UsageError(f"the learning rate {self.lr:g} must be in (0, 1]")
        if self.warmup_steps < 0:
            object.__setattr__(self, "warmup_steps", max(1, round(0.02 * self.steps)))
        if self.warmup_steps > self.steps:
            raise UsageError("the warm-up cannot be longer than the run")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.checkpoint_every < 0 or self.validate_every < 0:
            raise UsageError("checkpoint and validation intervals must be >= 0")
        if not (0 <= self.context_consistency < 1e3):
            raise UsageError(f"the context consistency weight {self.context_consistency:g} "
                             "must be in [0, 1000)")
        if not (0 <= self.label_error_weight < 1e3):
            raise UsageError(f"the label error weight {self.label_error_weight:g} must be in "
                             "[0, 1000)")
        if not (0 <= self.consistency_label_weight < 1e4):
            raise UsageError("the consistency label weight must be in [0, 10000)")
        if not (0 <= self.teacher_weight < 1e4):
            raise UsageError(f"the teacher weight {self.teacher_weight:g} must be in [0, 10000)")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        return self.lr * max(0.0, (self.steps - step) / span)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (on CPU, eval mode) and its history."""

    model: StackingRegressor
    step: int
    history: list[dict]
    seconds: float
    images_per_s: float
    precision: str


# --- distributed helpers -----------------------------------------------------------------------
@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _device(d: _Dist, device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{d.local_rank}")
    return torch.device("cpu")


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore") if os.name == "posix" else ""
    except OSError:
        flags = ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on CUDA with bf16 support or on CPUs with native bf16, else ``fp32``."""
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_bf16():
        # emulated bf16 measured 16x slower than fp32 (ResNet-18, AMD EPYC without AVX-512)
        log.warning("this CPU has no native bf16: --precision bf16 runs emulated, many times "
                    "slower than fp32; --precision auto picks fp32 here")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if _cpu_has_bf16() else "fp32"


# --- sampling ------------------------------------------------------------------------------------
def batch_indices(step: int, n_samples: int, batch_size: int, seed: int) -> np.ndarray:
    """Global sample indices of optimiser step ``step`` (epoch permutations from ``(seed, e)``)."""
    start = step * batch_size
    out = []
    pos = start
    while len(out) < batch_size:
        epoch, offset = divmod(pos, n_samples)
        perm = np.random.default_rng([seed, 7919, epoch]).permutation(n_samples)
        take = perm[offset : offset + batch_size - len(out)]
        out.extend(take.tolist())
        pos += len(take)
    return np.asarray(out, dtype=np.int64)


# --- the job ----------------------------------------------------------------------------------
def train(
    spec: RegressorSpec,
    source: PatchSource,
    config: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    validation: PatchSource | None = None,
    progress=null_progress,
    cancel: CancelToken | None = None,
    device: str | None = None,
    on_checkpoint: Callable[[int, dict], None] | None = None,
    init_from: str | os.PathLike | None = None,
    teacher: str | os.PathLike | None = None,
) -> TrainResult:
    """Train a :class:`StackingRegressor` on labelled patches.

    Parameters
    ----------
    spec
        Architecture and label convention.
    source
        Training patches (e.g. :class:`stackview.datasets.PatchDataset` or :class:`ArraySource`);
        images (B, H, W) at the model's sampling, labels (B, n) in Å or degrees.
    config
        Optimisation settings.
    out_dir
        Folder for checkpoints (None: no checkpoints, no resume).
    resume
        Continue from the checkpoint in ``out_dir`` (its spec and configuration must match).
    validation
        Optional held-out patches; their mean symmetric error is logged into the history.
    progress, cancel
        Job API; cancelling saves a checkpoint first (when ``out_dir`` is set) and raises
        :class:`stackview.errors.Cancelled`.
    device
        torch device (default: the local CUDA device when present, else CPU).
    init_from
        Start from the weights of a trained model instead of ImageNet/random ones (fine-tuning,
        e.g. on DRIT-styled patches after physics-noise training): a bundle (name or path) or a
        checkpoint folder made for the same spec. The optimiser and schedule start afresh.
    teacher
        A bundle (name or path) whose reading of each field's isolated window every reading is
        pulled to, with ``config.teacher_weight`` (both or neither must be given).

    Returns
    -------
    TrainResult
    """
    cancel = cancel or CancelToken()
    if len(source) < 1:
        raise UsageError("the training set is empty")
    dist_info = _init_distributed()
    dev = _device(dist_info, device)
    if config.threads and dev.type == "cpu":
        torch.set_num_threads(config.threads)
    precision = resolve_precision(config.precision, dev)
    if config.batch_size % dist_info.world:
        raise UsageError(
            f"the batch size {config.batch_size} must be divisible by the {dist_info.world} ranks"
        )
    local_batch = config.batch_size // dist_info.world

    model = build_regressor(spec, seed=config.seed).to(dev)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    frozen = frozen_parts(model, config.freeze_through)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = RawOutputLoss(spec, label_error_weight=config.label_error_weight).to(dev)
    if (teacher is None) != (config.teacher_weight == 0):
        raise UsageError("a teacher needs a teacher weight above 0, and a teacher weight needs "
                         "a teacher")
    tutor = None
    if teacher is not None:
        from stackview.inference.teacher import load_teacher

        tutor = load_teacher(teacher, spec)
        tutor.model.to(dev)
        if config.channels_last:
            tutor.model.to(memory_format=torch.channels_last)
    history: list[dict] = []
    start_step = 0
    if init_from is not None and not resume:
        weights = initial_weights(init_from, spec)
        model.load_state_dict(weights, strict=set(weights) == set(model.state_dict()))
        log.info("initialised from %s", init_from)
    if resume:
        if out_dir is None:
            raise UsageError("resuming needs the folder that holds the checkpoint")
        state, tensors = load_checkpoint(out_dir)
        if RegressorSpec.from_dict(state["spec"]) != spec:
            raise UsageError("the checkpoint was made for a different model; start a new folder")
        # checkpoints older than a setting were made with its default
        saved = {**TrainConfig().to_dict(), **state["config"]}
        now = config.to_dict()
        for key in ("steps", "batch_size", "lr", "warmup_steps", "seed", "augment",
                    "freeze_through"):
            if saved.get(key) != now.get(key):
                raise UsageError(
                    f"the checkpoint was made with {key} = {saved.get(key)!r}, not {now.get(key)!r}"
                )
        _restore(model, optimizer, state, tensors)
        start_step = int(state["step"])
        history = list(state.get("history", []))
        log.info("resumed from step %d", start_step)

    train_model: torch.nn.Module = model
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )

    augmenter = None
    if config.augment:
        from stackview.datasets.augment import OnlineAugment

        augmenter = OnlineAugment(**config.augment)

    autocast_dtype = torch.bfloat16 if precision == "bf16" else None
    n = len(source)
    margins = context_margins(spec, source, model) if spec.context_px else ()
    if config.consistency_label_weight and not (spec.context_px and loss_fn.invariant):
        raise UsageError("the consistency label weight needs --context and --head invariant")
    paired = bool(spec.context_px and (config.context_consistency
                                       or config.consistency_label_weight))
    if paired and len(margins) < 2:
        raise UsageError("the context consistency needs patches larger than the window and its "
                         "margin (a second, larger margin to compare with)")
    if tutor is not None:
        field_px = int(np.asarray(source.get(np.arange(1))[0]).shape[-1])
        if field_px < tutor.side_px:
            raise UsageError(f"the {field_px} px patches are smaller than the "
                             f"{tutor.side_px} px the teacher {tutor.name} reads")
    t0 = time.perf_counter()
    seen = 0
    step = start_step
    last_loss = float("nan")

    def checkpoint(step_now: int) -> None:
        if out_dir is not None and dist_info.main:
            save_checkpoint(out_dir, model, optimizer, step_now, spec, config, history)
            if on_checkpoint is not None:
                on_checkpoint(step_now, history[-1] if history else {})

    def load_batch(step_now: int) -> tuple[list[torch.Tensor], np.ndarray]:
        idx = batch_indices(step_now, n, config.batch_size, config.seed)
        idx = idx[dist_info.rank * local_batch : (dist_info.rank + 1) * local_batch]
        images, labels = source.get(np.sort(idx))
        order = np.argsort(np.argsort(idx))  # back to the permutation's order
        images = np.asarray(images, dtype=np.float32)[order]
        labels = np.asarray(labels, dtype=np.float64)[order]
        if augmenter is not None:
            # on the whole patch, so that both readings of a paired step see the same image
            rng = np.random.default_rng([config.seed, 104729, step_now, dist_info.rank])
            images = augmenter(images, rng)
        if spec.context_px:
            rng = np.random.default_rng([config.seed, 7919, step_now])
            if paired:
                views = [context_crop(images, spec),
                         context_crop(images, spec, int(rng.choice(margins[1:])))]
            else:
                views = [context_crop(images, spec, int(rng.choice(margins)))]
        else:
            views = [images]
        if tutor is not None:
            views.append(tutor.crop(images))  # last: the teacher's input, not a reading
        xs = [torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).unsqueeze(1)
              for v in views]
        # page-locked, so that the copy to the GPU overlaps the step before it
        return [x.pin_memory() if dev.type == "cuda" else x for x in xs], labels

    _train_mode(model, frozen)
    progress(start_step, config.steps, "training")
    batches = _prefetched(load_batch, start_step, config.steps)
    try:
        for step, (xs, labels) in batches:
            cancel.check()
            y = torch.from_numpy(labels).float().to(dev)
            for group in optimizer.param_groups:
                group["lr"] = config.lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            raws = []
            for i, x in enumerate(xs):
                x = x.to(dev, non_blocking=dev.type == "cuda")
                if config.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(dev.type, dtype=autocast_dtype,
                                    enabled=autocast_dtype is not None):
                    if tutor is not None and i == len(xs) - 1:
                        raws.append(tutor.raw(x))
                    else:
                        raws.append(train_model(x, raw=True).float())
            target = raws.pop() if tutor is not None else None
            loss = sum(loss_fn(raw, y) for raw in raws) / len(raws)
            if paired:
                loss = loss + config.context_consistency * torch.mean((raws[0] - raws[1]) ** 2)
                if config.consistency_label_weight:
                    apart = (linearised_label_error(loss_fn.space, raws[0], y)
                             - linearised_label_error(loss_fn.space, raws[1], y))
                    loss = loss + config.consistency_label_weight * torch.mean(apart**2)
            if target is not None:
                loss = loss + config.teacher_weight * sum(
                    torch.mean((raw - target) ** 2) for raw in raws) / len(raws)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss.item()} at step {step}")
            loss.backward()
            optimizer.step()
            last_loss = float(loss.detach())
            seen += config.batch_size
            done = step + 1
            record_val = validation is not None and (
                (config.validate_every and done % config.validate_every == 0)
                or (config.checkpoint_every and done % config.checkpoint_every == 0)
                or done == config.steps
            )
            if (config.checkpoint_every and done % config.checkpoint_every == 0) or record_val \
                    or done == config.steps:
                entry = {"step": done, "loss": last_loss, "lr": config.lr_at(step)}
                if record_val:
                    entry.update(validate(model, validation, spec, dev, precision))
                    _train_mode(model, frozen)
                history.append(entry)
                log.info("step %d: %s", done, entry)
            if config.checkpoint_every and done % config.checkpoint_every == 0 \
                    and done < config.steps:
                checkpoint(done)
            progress(done, config.steps, f"loss {last_loss:.4g}")
    except Cancelled:
        if out_dir is not None and step > start_step:
            # cancel.check() runs before a step starts, so exactly `step` steps are complete
            try:
                checkpoint(step)
            except Exception:  # pragma: no cover - best effort
                log.exception("could not save the checkpoint after the interruption")
        raise
    finally:
        batches.close()  # waits for the batch being loaded, here rather than at collection
        if dist_info.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    seconds = time.perf_counter() - t0
    checkpoint(config.steps)
    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        model=model, step=config.steps, history=history, seconds=seconds,
        images_per_s=seen / seconds if seconds > 0 else math.nan, precision=precision,
    )


def frozen_parts(model: StackingRegressor, through: str) -> list[torch.nn.Module]:
    """The backbone's parts up to and including ``through``, their weights frozen (none for
    an empty name); an unknown name is one clear error that lists the parts."""
    if not through:
        return []
    names = [n for n, _ in model.backbone.named_children()]
    if through not in names:
        raise UsageError(f"the backbone has no part {through!r}; its parts are "
                         f"{', '.join(names)}")
    parts = [m for _, m in list(model.backbone.named_children())[:names.index(through) + 1]]
    for part in parts:
        part.requires_grad_(False)
    return parts


def _train_mode(model: torch.nn.Module, frozen: list[torch.nn.Module]) -> None:
    """Training mode, except that frozen parts keep their batch-norm statistics."""
    model.train()
    for part in frozen:
        part.eval()


def context_margins(spec: RegressorSpec, source: PatchSource, model) -> tuple[int, ...]:
    """The context margins training shows a model that reads context: from its own margin to
    all the patches hold, in trunk cells (so what lies beyond its margin stops mattering)."""
    field_px = int(np.asarray(source.get(np.arange(1))[0]).shape[-1])
    stride = model.split()[2]
    most = (field_px - spec.window_px) // 2
    if most < spec.context_px:
        raise UsageError(f"the {field_px} px patches do not hold the {spec.window_px} px "
                         f"window with {spec.context_px} px of context on every side")
    return tuple(range(spec.context_px, most + 1, stride))


def context_crop(images: np.ndarray, spec: RegressorSpec, margin: int | None = None
                 ) -> np.ndarray:
    """The central window with ``margin`` px (default: the model's context) on every side."""
    side = spec.window_px + 2 * (spec.context_px if margin is None else margin)
    h, w = images.shape[-2:]
    y0, x0 = (h - side) // 2, (w - side) // 2
    return images[..., y0:y0 + side, x0:x0 + side]


def _prefetched(load: Callable[[int], tuple], start: int, stop: int):
    """``(step, load(step))`` for each step, loading the next batch in a thread while the current
    one trains: reading, converting and augmenting a batch is numpy work that releases the GIL, and
    on a GPU it would otherwise leave the device idle for a good part of every step. Each batch
    depends only on its step, so prefetching changes nothing in the results."""
    from concurrent.futures import ThreadPoolExecutor

    if start >= stop:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stackview-batches") as pool:
        pending = pool.submit(load, start)
        for step in range(start, stop):
            batch = pending.result()
            if step + 1 < stop:
                pending = pool.submit(load, step + 1)
            yield step, batch


@torch.no_grad()
def predict_batches(
    model: StackingRegressor, images: np.ndarray, batch_size: int = 64,
    device: torch.device | str = "cpu", precision: str = "fp32",
) -> np.ndarray:
    """Model outputs (N, n) in physical units for images (N, H, W), batched, in eval mode."""
    model.eval()
    dev = torch.device(device)
    out = []
    dtype = torch.bfloat16 if precision == "bf16" else None
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.asarray(images[start : start + batch_size], np.float32))
        x = x.unsqueeze(1).to(dev)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            out.append(model(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, model.spec.n_outputs))


def validate(model: StackingRegressor, source: PatchSource, spec: RegressorSpec,
             device: torch.device | str = "cpu", precision: str = "fp32",
             max_samples: int = 512) -> dict:
    """Mean and 95th percentile of the symmetric error on (up to ``max_samples`` of) a source."""
    count = min(len(source), max_samples)
    images, labels = source.get(np.arange(count))
    if spec.context_px:  # as the window mode reads: the model's own margin
        images = context_crop(np.asarray(images), spec)
    pred = predict_batches(model, images, device=device, precision=precision)
    space = spec.label_space()
    err = space.distance(pred, labels)
    unit = "deg" if spec.task == "twist" else "A"
    if getattr(space, "family", "") == "both":
        right = space.family_of(pred) == space.family_of(labels)
        err = err[right] if right.any() else np.zeros(1)
        return {"val_mean_A": float(np.mean(err)), "val_p95_A": float(np.percentile(err, 95)),
                "val_family_accuracy": float(right.mean())}
    return {f"val_mean_{unit}": float(np.mean(err)),
            f"val_p95_{unit}": float(np.percentile(err, 95))}

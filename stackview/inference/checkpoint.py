"""Checkpoints of the regressor's training: ``checkpoint.safetensors`` (model weights, buffers
and Adam moments) plus ``checkpoint.json`` (spec, configuration, step, history), both written
atomically, the step recorded in both and checked on load; and the starting weights of a run
(``--init-from`` a checkpoint folder or a bundle)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from stackview.errors import UsageError
from stackview.inference.regressor import RegressorSpec, StackingRegressor
from stackview.io.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

CHECKPOINT_WEIGHTS = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint.json"


def _unwrap(model: torch.nn.Module) -> StackingRegressor:
    return model.module if hasattr(model, "module") else model


def save_checkpoint(
    folder: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    step: int, spec: RegressorSpec, config: Any, history: list[dict],
    extra: dict | None = None,
) -> Path:
    """Write ``checkpoint.safetensors`` + ``checkpoint.json`` atomically into ``folder``
    (``config`` is the run's :class:`~stackview.inference.train.TrainConfig`)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in _unwrap(model).state_dict().items()}
    opt_state = optimizer.state_dict()
    for idx, state in opt_state["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    with atomic_path(folder / CHECKPOINT_WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "stackview-checkpoint", "step": str(step)})
    state = {
        "format": "stackview-checkpoint", "step": step, "spec": spec.to_dict(),
        "config": config.to_dict(), "history": history,
        "param_groups": opt_state["param_groups"], "extra": extra or {},
    }
    write_text_atomic(folder / CHECKPOINT_STATE, json.dumps(state, indent=1))
    return folder / CHECKPOINT_WEIGHTS


def load_checkpoint(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """The JSON state and the tensors of a checkpoint folder (no unpickling)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    wpath, spath = folder / CHECKPOINT_WEIGHTS, folder / CHECKPOINT_STATE
    if not wpath.is_file() or not spath.is_file():
        raise UsageError(f"no checkpoint in {folder} (expected {CHECKPOINT_WEIGHTS} and "
                         f"{CHECKPOINT_STATE})")
    try:
        state = json.loads(spath.read_text(encoding="utf-8"))
        with safe_open(str(wpath), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(wpath))
    except (ValueError, OSError, Exception) as exc:  # safetensors raises its own error type
        raise UsageError(f"the checkpoint in {folder} is unreadable ({exc})") from exc
    if state.get("format") != "stackview-checkpoint" or meta.get("step") != str(state.get("step")):
        raise UsageError(f"the checkpoint in {folder} is inconsistent (interrupted write?)")
    return state, tensors


def initial_weights(source: str | os.PathLike, spec: RegressorSpec) -> dict[str, torch.Tensor]:
    """fp32 weights of a checkpoint folder or a bundle made for ``spec``, to start training from
    (only the backbone's when the source has the same backbone and task but another head or
    number of layers)."""
    from stackview.models.bundle import load_bundle
    from stackview.models.registry import find_model

    path = Path(source)
    if path.is_dir() and (path / CHECKPOINT_STATE).is_file():
        state, tensors = load_checkpoint(path)
        other = RegressorSpec.from_dict(state["spec"])
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    else:
        bundle = load_bundle(find_model(str(source)))
        other = bundle.model.spec
        weights = bundle.model.state_dict()
    same_net = all(getattr(other, k) == getattr(spec, k)
                   for k in ("task", "layers", "backbone", "head", "hidden")) \
        and other.n_raw == spec.n_raw
    if not same_net and other.backbone == spec.backbone and other.task == spec.task:
        # e.g. a bilayer model starting a trilayer one: what the backbone learned to see in
        # images of the material carries over; the head, whose outputs differ, starts afresh
        log.info("starting the %s backbone from %s; the head starts afresh", spec.backbone,
                 path.name)
        return {k: v.float() if v.is_floating_point() else v for k, v in weights.items()
                if k.startswith("backbone.")}
    if not same_net:
        raise UsageError(
            f"{path.name} was trained for {other.material} {other.task} with a {other.backbone} "
            f"{other.head} head; it cannot start a {spec.material} {spec.task} "
            f"{spec.backbone} {spec.head} model"
        )
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    if other != spec:
        # Transfer from a related material (ReS2 → ReSe2): the network is the same and its
        # outputs are in the labels' reduced coordinates; only the label scaling, which follows
        # the lattice, must be the new material's.
        log.info("transferring %s %s weights to %s", other.material, other.task, spec.material)
        weights["label_offset"] = torch.tensor(spec.label_offset, dtype=torch.float32)
        weights["label_scale"] = torch.tensor(spec.label_scale, dtype=torch.float32)
    return weights


def _restore(model: StackingRegressor, optimizer: torch.optim.Optimizer, state: dict,
             tensors: dict[str, torch.Tensor]) -> None:
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_sd)
    opt_sd: dict = {"state": {}, "param_groups": state["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_sd["state"].setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict(opt_sd)

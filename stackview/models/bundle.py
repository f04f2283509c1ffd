"""Model bundles: a trained stacking regressor as safetensors weights plus a JSON card.

:func:`save_bundle` writes the weights (parameters in fp16 or fp32, buffers in fp32) and the
:class:`~stackview.models.card.ModelCard`; :func:`load_bundle` reads a bundle by path or by name
(through :mod:`stackview.models.registry`) and :func:`install_model` copies one into the user's
library. Loading never unpickles: the weight file is checked to be a safetensors file from its
header before anything is parsed, a pickle (e.g. a PyTorch ``.pt``/``.pth``) or any other file is
refused with a :class:`~stackview.errors.UsageError`, and the network is rebuilt from the card.
Torch is imported inside functions; no Qt.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackview.errors import UsageError
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.models.card import (
    BUNDLE_FORMAT,
    ModelCard,
    bundle_paths,
    check_safetensors,
    file_sha256,
    read_card,
)
from stackview.models.registry import find_model, user_models_dir


@dataclass
class Bundle:
    """A loaded bundle: the regressor (eval mode, CPU, fp32), its card and where it came from."""

    model: Any
    card: ModelCard
    path: Path | None = None

    @property
    def label_space(self):
        return self.card.regressor_spec().label_space()


def save_bundle(
    stem: str | os.PathLike, model, card: ModelCard, half: bool = True
) -> Path:
    """Write ``stem.safetensors`` and ``stem.json`` atomically.

    Parameters
    ----------
    stem
        Path without suffix (``stackview/resources/models/ReS2_slip``).
    model
        :class:`stackview.inference.regressor.StackingRegressor`.
    card
        The card; its ``name`` is replaced by the stem's name and its spec by the model's.
    half
        Store floating-point parameters as fp16 (buffers stay fp32); halves the file.

    Returns
    -------
    The weights path.
    """
    import torch
    from safetensors.torch import save_file

    weights, card_path = bundle_paths(stem)
    params = {name for name, _ in model.named_parameters()}
    tensors = {}
    for key, value in model.state_dict().items():
        t = value.detach().cpu()
        if half and key in params and t.is_floating_point():
            t = t.to(torch.float16)
        elif t.is_floating_point():
            t = t.to(torch.float32)
        tensors[key] = t.contiguous()
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": BUNDLE_FORMAT})
    card = dataclasses.replace(
        card, name=weights.stem, spec=model.spec.to_dict(),
        weights_dtype="float16" if half else "float32",
        created=card.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    data = card.to_dict()
    data["weights"] = weights.name
    data["weights_sha256"] = file_sha256(weights)
    write_text_atomic(card_path, json.dumps(data, indent=1))
    return weights


def load_bundle(path: str | os.PathLike, verify: bool = True) -> Bundle:
    """Load a bundle (by path or, via the registry, by name) without unpickling anything.

    Parameters
    ----------
    path
        Bundle stem, ``.json``, ``.safetensors``, a folder holding one bundle, or the name of a
        bundled / user-library model (see :func:`stackview.models.registry.find_model`).
    verify
        Check the weights' SHA-256 against the card.

    Returns
    -------
    Bundle
        Model in eval mode on the CPU in fp32.
    """
    import torch
    from safetensors.torch import load_file

    from stackview.inference.regressor import StackingRegressor

    p = Path(path)
    if not p.exists() and not p.with_suffix(".json").exists() \
            and not Path(str(p) + ".json").exists():
        p = find_model(str(path))
    card = read_card(p)
    weights, card_path = bundle_paths(p)
    if not weights.is_file():
        raise UsageError(f"model bundle weights not found: {weights}")
    check_safetensors(weights)
    data = json.loads(card_path.read_text(encoding="utf-8"))
    if verify and data.get("weights_sha256") and file_sha256(weights) != data["weights_sha256"]:
        raise UsageError(f"'{weights.name}' does not match its card (SHA-256 differs)")
    model = StackingRegressor(card.regressor_spec())
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors' own error type
        raise UsageError(f"'{weights.name}' is unreadable ({exc})") from None
    state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UsageError(f"'{weights.name}' does not fit its card's network "
                         f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    model.eval()
    return Bundle(model=model, card=card, path=card_path.with_suffix(""))


def update_card(path: str | os.PathLike, **fields) -> ModelCard:
    """Merge ``fields`` (e.g. ``accuracy=...``) into a bundle's card and rewrite it atomically."""
    weights, card_path = bundle_paths(path)
    read_card(path)
    data = json.loads(card_path.read_text(encoding="utf-8"))
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    card = ModelCard.from_dict(data)
    write_text_atomic(card_path, json.dumps(data, indent=1))
    return card


def install_model(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Copy a bundle into the user library after checking it loads; returns the new stem."""
    bundle = load_bundle(path)
    weights, card = bundle_paths(path)
    target = user_models_dir() / bundle.card.name
    if Path(str(target) + ".json").exists() and not overwrite:
        raise UsageError(f"a model called {bundle.card.name!r} is already installed")
    for src, suffix in ((weights, ".safetensors"), (card, ".json")):
        with atomic_path(str(target) + suffix) as tmp:
            shutil.copyfile(src, tmp)
    return target

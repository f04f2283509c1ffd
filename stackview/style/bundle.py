"""Style bundles: a trained DRIT translator as safetensors weights plus a JSON card.

A bundle is two files with one stem, ``NAME.safetensors`` (weights of the content encoders,
attribute encoders and generators; no discriminators) and ``NAME.json`` (the card: format,
material, microscope conditions, model sampling in Å/px, the full :class:`StyleConfig`, the
reference attribute code of the experimental images, the training command and data, measured
metrics, the SHA-256 of the weights). Loading never unpickles anything: the weight file must
be a safetensors file (checked from its header before any parsing), so a bundle from an
untrusted source cannot run code. Torch is imported inside functions; no Qt.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import numpy as np

from stackview import __version__
from stackview.errors import UsageError
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.models.card import check_safetensors as check_safetensors_header
from stackview.models.card import file_sha256
from stackview.style.config import StyleConfig

BUNDLE_FORMAT = "stackview-style-bundle/1"


def _is_card(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def bundle_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, card) paths of a bundle given its stem, its ``.json``, its ``.safetensors``
    or a folder holding exactly one ``*.json`` card."""
    path = Path(path)
    if path.is_dir():
        cards = sorted(
            p
            for p in path.glob("*.json")
            if p.with_suffix(".safetensors").is_file() and _is_card(p)
        )
        if len(cards) != 1:
            raise UsageError(
                f"{path} must hold exactly one style bundle (NAME.json + "
                f"NAME.safetensors); found {len(cards)}"
            )
        path = cards[0]
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_bundle(
    stem: str | os.PathLike, model, reference_attribute: np.ndarray, info: dict | None = None
) -> Path:
    """Write ``stem.safetensors`` and ``stem.json`` (atomically) for a trained DRIT model.

    Parameters
    ----------
    stem
        Path without suffix, e.g. ``stackview/resources/models/style_ReS2``.
    model
        :class:`stackview.style.networks.DRIT`.
    reference_attribute
        Attribute code (``attr_dim``) that renders "the style of the training images".
    info
        Extra card fields (``material``, ``microscope``, ``training``, ``metrics``, …).

    Returns
    -------
    The weights path.
    """
    from safetensors.torch import save_file

    weights, card_path = bundle_paths(stem)
    cfg: StyleConfig = model.cfg
    tensors = {k: v.detach().clone().contiguous() for k, v in model.translator_state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": BUNDLE_FORMAT})
    ref = np.asarray(reference_attribute, dtype=float).reshape(-1)
    if ref.size != cfg.attr_dim:
        raise UsageError(f"reference attribute has {ref.size} values, the model {cfg.attr_dim}")
    card = {
        "format": BUNDLE_FORMAT,
        "kind": "style",
        "name": weights.stem,
        "material": None,
        "microscope": None,
        "direction": "noise-free simulation (A) -> experimental style (B)",
        "normalisation": "grey, min-max to [0, 1]; networks see 2*x-1",
        "sampling_A": cfg.sampling_A,
        "image_px": cfg.image_px,
        "patch_nm": (cfg.image_px * cfg.sampling_A / 10) if cfg.sampling_A else None,
        "config": cfg.to_dict(),
        "reference_attribute": [round(float(v), 6) for v in ref],
        "training": {},
        "selection": None,
        "metrics": {},
        "stackview_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    card.update(info or {})
    card["weights"] = weights.name
    card["weights_sha256"] = file_sha256(weights)
    write_text_atomic(card_path, json.dumps(card, indent=1))
    return weights


def read_card(path: str | os.PathLike) -> dict:
    """The JSON card of a bundle (see :func:`bundle_paths` for accepted paths)."""
    _, card_path = bundle_paths(path)
    if not card_path.is_file():
        raise UsageError(f"style bundle card not found: {card_path}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{card_path.name} is not valid JSON ({exc.msg})") from None
    if card.get("format") != BUNDLE_FORMAT:
        raise UsageError(f"{card_path.name} is not a stackview style bundle card")
    return card


def load_bundle(path: str | os.PathLike, verify: bool = True):
    """Load a style bundle; returns ``(model, card)`` with the model in eval mode.

    Parameters
    ----------
    verify
        Check the weights' SHA-256 against the card.
    """
    from safetensors.torch import load_file

    from stackview.style.networks import DRIT

    weights, _ = bundle_paths(path)
    card = read_card(path)
    if not weights.is_file():
        raise UsageError(f"style bundle weights not found: {weights}")
    check_safetensors_header(weights)
    if verify and card.get("weights_sha256") and file_sha256(weights) != card["weights_sha256"]:
        raise UsageError(f"{weights.name} does not match its card (SHA-256 differs)")
    cfg = StyleConfig.from_dict(card["config"])
    model = DRIT(cfg, discriminators=False)
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UsageError(
            f"{weights.name} does not fit its card's network "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )
    model.eval()
    return model, card


def update_card(path: str | os.PathLike, **fields) -> dict:
    """Merge ``fields`` into a bundle's card (e.g. ``metrics=...``) and rewrite it atomically."""
    _, card_path = bundle_paths(path)
    card = read_card(path)
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    write_text_atomic(card_path, json.dumps(card, indent=1))
    return card

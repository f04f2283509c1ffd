"""Registry of model bundles: those shipped in ``stackview/resources/models/``, and the user's.

The user library is ``<user data dir>/models`` (see :func:`stackview.paths.user_data_dir`); a user
bundle with the same name as a shipped one takes precedence. Only cards are read here (cheap, no
torch); :func:`stackview.models.bundle.load_bundle` loads the weights. No Qt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from stackview.errors import UsageError
from stackview.models.card import ModelCard, bundle_paths, read_card
from stackview.paths import RESOURCES_DIR, user_data_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    """A bundle found by the registry."""

    name: str
    path: Path  # the stem (NAME without suffix)
    source: str  # "bundled" or "user"
    card: ModelCard


def bundled_dir() -> Path:
    return RESOURCES_DIR / "models"


def user_models_dir() -> Path:
    path = user_data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _scan(folder: Path, source: str) -> list[ModelEntry]:
    out = []
    if not folder.is_dir():
        return out
    for card_path in sorted(folder.glob("*.json")):
        if not card_path.with_suffix(".safetensors").is_file():
            continue
        try:
            card = read_card(card_path)
        except UsageError as exc:  # a style bundle or a broken card: skip it, say why
            log.info("skipping %s: %s", card_path, exc)
            continue
        out.append(ModelEntry(card_path.stem, card_path.with_suffix(""), source, card))
    return out


def list_models() -> list[ModelEntry]:
    """All bundles, user library first overriding shipped ones of the same name."""
    found: dict[str, ModelEntry] = {}
    for entry in _scan(bundled_dir(), "bundled") + _scan(user_models_dir(), "user"):
        found[entry.name] = entry
    return sorted(found.values(), key=lambda e: (e.card.material, e.card.task, e.name))


def find_model(name: str) -> Path:
    """Stem of the bundle called ``name`` (or the path itself when it is a bundle on disk)."""
    p = Path(name)
    weights, card = bundle_paths(p) if (p.exists() or p.with_suffix(".json").exists()) else (
        None, None)
    if card is not None and card.is_file():
        return card.with_suffix("")
    for entry in list_models():
        if entry.name == name:
            return entry.path
    known = ", ".join(e.name for e in list_models()) or "none"
    raise UsageError(f"no model bundle called {name!r} (known: {known})")


#: a model's window is chosen so that the image holds at least this many windows across its
#: shorter side (a map, not a single reading), the largest such window being the most accurate
WINDOWS_ACROSS = 3.0


def preferred_model(material: str, task: str | None = None, layers: int | None = None,
                    field_nm: float | None = None,
                    window_nm: float | None = None) -> ModelEntry | None:
    """The model used when none is named: user library first, then slip before twist, then
    fewer layers (the one rule the CLI and the GUI share); among models that differ only in
    their window, the one for ``window_nm`` or, by the image's shorter side ``field_nm``, the
    largest window the image holds :data:`WINDOWS_ACROSS` times (else the smallest that fits);
    with neither, the largest window."""
    candidates = [e for e in list_models() if e.card.material == material
                  and (task is None or e.card.task == task)
                  and (layers is None or e.card.layers == layers)]
    if not candidates:
        return None
    candidates.sort(key=lambda e: (e.source != "user", e.card.task != "slip", e.card.layers,
                                   -e.card.patch_nm))
    head = candidates[0]
    family = [e for e in candidates if (e.source, e.card.task, e.card.layers)
              == (head.source, head.card.task, head.card.layers)]
    return choose_window(family, field_nm, window_nm)


def choose_window(family: list[ModelEntry], field_nm: float | None = None,
                  window_nm: float | None = None) -> ModelEntry:
    """One of ``family`` (models for the same job, sorted largest window first) by window."""
    if window_nm is not None:
        best = min(family, key=lambda e: abs(e.card.patch_nm - window_nm))
        if abs(best.card.patch_nm - window_nm) > 0.05 * best.card.patch_nm:
            sizes = ", ".join(f"{e.card.patch_nm:.2f}" for e in family)
            raise UsageError(f"no {best.card.material} {best.card.task} model analyses "
                             f"{window_nm:g} nm windows (windows: {sizes} nm); leave out "
                             "--window or give one of these")
        return best
    if field_nm is None or len(family) == 1:
        return family[0]
    fits = [e for e in family if e.card.patch_nm <= field_nm * (1 + 1e-6)]
    if not fits:
        return family[-1]  # the smallest: the analysis then says the image is too small
    roomy = [e for e in fits if field_nm * (1 + 1e-6) >= WINDOWS_ACROSS * e.card.patch_nm]
    return roomy[0] if roomy else fits[-1]


def default_model(material: str, task: str, layers: int = 2) -> ModelEntry | None:
    """The preferred bundle for a material/task/layer count (user library first), if any."""
    return preferred_model(material, task, layers)

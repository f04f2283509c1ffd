"""Model bundles (safetensors weights + JSON card) and the registry of installed bundles.

:mod:`.card` reads cards, :mod:`.registry` finds bundles by name, :mod:`.bundle` saves and
loads them (in that order of imports); ``save_bundle``/``load_bundle`` write and read bundles
without ever unpickling; ``list_models`` finds the shipped bundles in
``stackview/resources/models/`` and the user's library. Importing this package does not import
torch; no Qt.
"""

from stackview.models.bundle import Bundle, install_model, load_bundle, save_bundle, update_card
from stackview.models.card import BUNDLE_FORMAT, ModelCard, check_safetensors, read_card
from stackview.models.registry import default_model, find_model, list_models

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "ModelCard",
    "check_safetensors",
    "default_model",
    "find_model",
    "install_model",
    "list_models",
    "load_bundle",
    "read_card",
    "save_bundle",
    "update_card",
]

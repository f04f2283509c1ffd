"""Where stackview keeps its files: bundled resources and the user's data directory.

The bundled models, sample image, energy landscapes, contamination textures and icons are
package data in ``stackview/resources/`` (in a clone, an installed wheel, an sdist install and
the frozen app alike), found through :mod:`importlib.resources`. The user's own models and
landscapes live in the user data directory: ``STACKVIEW_DATA_DIR`` overrides it (tests point it
at a temporary folder); otherwise ``$XDG_DATA_HOME/stackview`` or ``~/.local/share/stackview``
(on Windows ``%APPDATA%/stackview``).
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path


def _package_dir() -> Path:
    """The ``stackview`` package folder on disk (importlib.resources; this file's folder when
    the loader offers no file-system path)."""
    try:
        files = resources.files(__package__ or "stackview")
        if isinstance(files, Path):
            return files.resolve()
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual loaders
        pass
    return Path(__file__).resolve().parent


#: the installed (or checked-out) ``stackview`` package folder
PACKAGE_DIR = _package_dir()
#: the bundled, read-only resources (package data): models/, samples/, pel/, contamination/,
#: icons/
RESOURCES_DIR = PACKAGE_DIR / "resources"
#: the bundled experimental ReS2 bilayer image (see NOTICE for its source)
SAMPLE_IMAGE = RESOURCES_DIR / "samples" / "ReS2_bilayer_tedgen_sample4.png"


def user_data_dir() -> Path:
    """The user's stackview data folder (created on first use)."""
    env = os.environ.get("STACKVIEW_DATA_DIR")
    if env:
        path = Path(env)
    elif sys.platform == "win32":
        path = Path(os.environ.get("APPDATA", Path.home())) / "stackview"
    else:
        path = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "stackview"
    path.mkdir(parents=True, exist_ok=True)
    return path

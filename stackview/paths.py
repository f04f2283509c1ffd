"""Where stackview keeps its files: bundled resources and the user's data directory.

``STACKVIEW_DATA_DIR`` overrides the user directory (tests point it at a temporary folder);
otherwise ``$XDG_DATA_HOME/stackview`` or ``~/.local/share/stackview`` (on Windows
``%APPDATA%/stackview``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: the repository's (or installed package's) ``resources`` folder
PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCES_DIR = PACKAGE_DIR.parent / "resources"


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

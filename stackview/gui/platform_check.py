"""Before the window starts: can Qt's xcb platform plugin load on this Linux desktop?

PySide6 ≥ 6.5 needs X11/xcb libraries that a minimal Debian/Ubuntu or Fedora desktop lacks
(libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, …); Qt then aborts with a generic "Could not
load the Qt platform plugin "xcb"" that a microscopist cannot act on. :func:`xcb_problem` lists
the plugin's shared-library dependencies with ``ldd`` (all levels, so the Qt xcb integration
library's own needs too) and, if some are missing, returns one sentence naming them and the
command that installs them. Skipped where xcb is not what Qt will use: non-Linux systems,
``QT_QPA_PLATFORM`` set to another plugin (offscreen, minimal, wayland, …), a Wayland session
without an explicit xcb choice. No Qt import beyond QtCore (the plugin folder); no QApplication.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

#: library soname (without the version) -> (Debian/Ubuntu package, Fedora package)
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-ewmh.so": ("libxcb-ewmh2", "xcb-util-wm"),
    "libxcb-image.so": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util.so": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xinerama.so": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so": ("libxcb-xinput0", "libxcb"),
    "libxcb-xkb.so": ("libxcb-xkb1", "libxcb"),
    "libxcb-glx.so": ("libxcb-glx0", "libxcb"),
    "libxcb.so": ("libxcb1", "libxcb"),
    "libX11-xcb.so": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so": ("libx11-6", "libX11"),
    "libXext.so": ("libxext6", "libXext"),
    "libXrender.so": ("libxrender1", "libXrender"),
    "libSM.so": ("libsm6", "libSM"),
    "libICE.so": ("libice6", "libICE"),
    "libxkbcommon-x11.so": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so": ("libxkbcommon0", "libxkbcommon"),
    "libfontconfig.so": ("libfontconfig1", "fontconfig"),
    "libfreetype.so": ("libfreetype6", "freetype"),
    "libdbus-1.so": ("libdbus-1-3", "dbus-libs"),
    "libEGL.so": ("libegl1", "libglvnd-egl"),
    "libGL.so": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so": ("libopengl0", "libglvnd-opengl"),
    "libglib-2.0.so": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so": ("libglib2.0-0", "glib2"),
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def should_check(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt will use the xcb plugin, so that its libraries must be present."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return False
    requested = env.get("QT_QPA_PLATFORM", "").strip()
    if requested:  # "offscreen", "minimal", "wayland", "xcb", "wayland;xcb", "xcb:option"
        return requested.split(";")[0].split(":")[0].strip() == "xcb"
    # unset: Qt 6 takes wayland in a Wayland session (falling back to xcb), else xcb
    return not (env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland")


def xcb_plugin() -> Path | None:
    """The xcb platform plugin Qt would load (None where there is none to check)."""
    folders = [Path(p) for p in os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(":") if p]
    try:
        from PySide6.QtCore import QLibraryInfo

        folders.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
                       / "platforms")
    except Exception:  # no binding at all: the window's own import error says so
        return None
    for folder in folders:
        plugin = folder / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def ldd(library: Path) -> str:
    """``ldd``'s listing of ``library``'s dependencies at every level ('' without ldd)."""
    exe = shutil.which("ldd")
    if exe is None:
        return ""
    try:
        done = subprocess.run([exe, str(library)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def missing_libraries(listing: str) -> list[str]:
    """The libraries an ``ldd`` listing reports as not found, each once, in order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(listing)))


def _soname_stem(library: str) -> str:
    """``libxcb-cursor.so.0`` -> ``libxcb-cursor.so``."""
    return re.sub(r"(\.so)(\.\d+)*$", r"\1", library)


def install_hint(missing: list[str]) -> str:
    """The sentence for ``missing`` libraries: their names and the commands that install them."""
    apt = list(dict.fromkeys(PACKAGES[_soname_stem(m)][0] for m in missing
                             if _soname_stem(m) in PACKAGES))
    dnf = list(dict.fromkeys(PACKAGES[_soname_stem(m)][1] for m in missing
                             if _soname_stem(m) in PACKAGES))
    unknown = [m for m in missing if _soname_stem(m) not in PACKAGES]
    names = ", ".join(missing)
    text = (f"the window cannot start because Qt's xcb platform plugin needs system libraries "
            f"that are not installed ({names})")
    if apt:
        text += (f"; install them with 'sudo apt install {' '.join(apt)}' on Debian/Ubuntu or "
                 f"'sudo dnf install {' '.join(dnf)}' on Fedora")
    if unknown:
        text += (f"; find the package for {', '.join(unknown)} with 'apt-file search NAME' or "
                 f"'dnf provides \"*/NAME\"'")
    return text + " (the command line works without them)"


def xcb_problem(env: Mapping[str, str] | None = None, platform: str | None = None,
                plugin: Path | None = None,
                lister: Callable[[Path], str] | None = None) -> str | None:
    """One sentence if the xcb plugin cannot load for want of libraries, else None.

    ``plugin`` and ``lister`` are for tests: another library to check, another way to list
    its dependencies (the default runs ``ldd``)."""
    if not should_check(env, platform):
        return None
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries((lister or ldd)(plugin))
    return install_hint(missing) if missing else None

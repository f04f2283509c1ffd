"""First start on a bare Linux desktop: ``stackview gui`` checks, before any QApplication, that
Qt's xcb platform plugin finds its system libraries, and otherwise says in one sentence which
are missing and how to install them (exit 2). The check is pointed at missing libraries: an
injected ``ldd`` listing, and a real library built here that needs one that does not exist."""

import shutil
import subprocess
from pathlib import Path

import pytest

from stackview import cli
from stackview.gui import platform_check
from stackview.gui.platform_check import (
    install_hint,
    missing_libraries,
    should_check,
    xcb_problem,
)

LINUX = "linux"
#: what ldd prints for PySide6 6.11's libqxcb.so on a minimal Debian 12 (shortened)
LISTING = """\
\tlinux-vdso.so.1 (0x00007ffc3b5f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x1)
\tlibxcb-cursor.so.0 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f0e7d2a1000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibstackview-nonexistent.so.3 => not found
"""


@pytest.mark.parametrize("env, platform, expected", [
    ({}, LINUX, True),
    ({"QT_QPA_PLATFORM": "xcb"}, LINUX, True),
    ({"QT_QPA_PLATFORM": "xcb:nograb"}, LINUX, True),
    ({"QT_QPA_PLATFORM": "offscreen"}, LINUX, False),
    ({"QT_QPA_PLATFORM": "minimal"}, LINUX, False),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, LINUX, False),
    ({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, LINUX, False),
    ({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland",
      "QT_QPA_PLATFORM": "xcb"}, LINUX, True),
    ({}, "darwin", False),
    ({}, "win32", False),
])
def test_check_runs_only_where_qt_uses_xcb(env, platform, expected):
    assert should_check(env, platform) is expected


def test_missing_libraries_are_read_from_the_listing_once_each():
    assert missing_libraries(LISTING) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4",
                                          "libxcb-keysyms.so.1",
                                          "libstackview-nonexistent.so.3"]
    assert missing_libraries("\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n") == []


def test_message_names_libraries_and_the_install_commands():
    text = xcb_problem(env={}, platform=LINUX, plugin=Path("/x/libqxcb.so"),
                       lister=lambda plugin: LISTING)
    assert "\n" not in text and text.count(". ") == 0  # one sentence
    for lib in ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"):
        assert lib in text
    assert "'sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1' on Debian/Ubuntu" \
        in text
    assert "'sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms' on Fedora" in text
    # a library with no known package is named with the way to find its package
    assert "find the package for libstackview-nonexistent.so.3" in text


def test_no_message_when_nothing_is_missing_or_the_check_does_not_apply():
    listing = "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n"
    assert xcb_problem(env={}, platform=LINUX, plugin=Path("/x/libqxcb.so"),
                       lister=lambda plugin: listing) is None
    assert xcb_problem(env={"QT_QPA_PLATFORM": "offscreen"}, platform=LINUX,
                       plugin=Path("/x/libqxcb.so"), lister=lambda plugin: LISTING) is None


def test_dependencies_known_to_qt_have_package_names():
    hint = install_hint(["libxkbcommon-x11.so.0", "libxcb-render-util.so.0", "libEGL.so.1"])
    assert "libxkbcommon-x11-0 libxcb-render-util0 libegl1" in hint
    assert "libxkbcommon-x11 xcb-util-renderutil libglvnd-egl" in hint
    assert "find the package" not in hint


@pytest.mark.skipif(shutil.which("ldd") is None or shutil.which("cc") is None,
                    reason="needs ldd and a C compiler")
def test_real_ldd_on_a_library_whose_dependency_is_missing(tmp_path):
    """A shared library linked against libstackviewgone.so.1, which is then deleted: the check
    (real ldd) names it."""
    (tmp_path / "gone.c").write_text("int gone(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int gone(void);\nint plugin(void) { return gone(); }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname,libstackviewgone.so.1", "-o",
                    str(tmp_path / "libstackviewgone.so.1"), str(tmp_path / "gone.c")],
                   check=True)
    (tmp_path / "libstackviewgone.so").symlink_to("libstackviewgone.so.1")
    plugin = tmp_path / "libqxcb.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(plugin), str(tmp_path / "plugin.c"),
                    f"-L{tmp_path}", f"-Wl,-rpath,{tmp_path}", "-lstackviewgone"], check=True)
    assert "libstackviewgone.so.1 =>" in platform_check.ldd(plugin)
    assert "libstackviewgone" not in (xcb_problem(env={}, platform=LINUX, plugin=plugin) or "")
    (tmp_path / "libstackviewgone.so.1").unlink()
    text = xcb_problem(env={}, platform=LINUX, plugin=plugin)
    assert text is not None and "(libstackviewgone.so.1)" in text


def test_gui_command_refuses_before_qapplication(monkeypatch, capsys):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(platform_check.sys, "platform", "linux")
    monkeypatch.setattr(platform_check, "xcb_plugin", lambda: Path("/x/libqxcb.so"))
    monkeypatch.setattr(platform_check, "ldd", lambda plugin: LISTING)

    def no_app():
        raise AssertionError("QApplication was started despite the missing libraries")

    from stackview.gui import app
    monkeypatch.setattr(app, "create_app", no_app)
    assert cli.main(["gui"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stackview: error: the window cannot start")
    assert len(err.splitlines()) == 1 and "libxcb-cursor.so.0" in err
    assert "sudo apt install libxcb-cursor0" in err and "sudo dnf install xcb-util-cursor" in err

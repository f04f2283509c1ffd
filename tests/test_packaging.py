"""Packaging files stay in step with the code: the desktop entry's file types are exactly the
readers' suffixes, the PyInstaller spec bundles every resource folder, the icons exist at every
size, and the install script writes a usable desktop entry. (The frozen build itself is not run
here: packaging/build_and_smoke.sh, see docs/user-guide.md.)"""

import configparser
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stackview.io.readers import SUFFIXES

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
ICONS = ROOT / "stackview" / "resources" / "icons"
#: shared-mime-info's own types and their globs (freedesktop.org.xml)
STANDARD_MIME_GLOBS = {
    "image/tiff": {".tif", ".tiff"},
    "image/png": {".png"},
    "image/jpeg": {".jpg", ".jpeg"},
    "image/bmp": {".bmp"},
}
MIME_NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}


def desktop_entry(path=PACKAGING / "stackview.desktop") -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read_string(Path(path).read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def custom_mime_globs() -> dict[str, set[str]]:
    tree = ET.parse(PACKAGING / "stackview-mime.xml")
    out = {}
    for mime in tree.getroot().findall("m:mime-type", MIME_NS):
        globs = {g.get("pattern").lstrip("*").lower() for g in mime.findall("m:glob", MIME_NS)}
        out[mime.get("type")] = globs
    return out


def test_desktop_file_parses_and_launches_the_window():
    entry = desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "stackview"
    assert entry["Exec"].split()[:2] == ["stackview", "gui"]
    assert entry["Exec"].split()[-1] == "%F"  # several files, as the gui command takes
    assert entry["Icon"] == "stackview"
    assert entry["Terminal"] == "false"
    assert "Science" in entry["Categories"].split(";")


def test_desktop_mime_types_are_exactly_the_readers_suffixes():
    """Fails when a reader gains or loses a format and the desktop entry does not follow."""
    listed = [m for m in desktop_entry()["MimeType"].split(";") if m]
    assert len(listed) == len(set(listed))
    custom = custom_mime_globs()
    known = {**STANDARD_MIME_GLOBS, **custom}
    unknown = [m for m in listed if m not in known]
    assert not unknown, f"MIME types with no glob definition: {unknown}"
    assert set(custom) <= set(listed), "a type defined in stackview-mime.xml is not listed"
    covered = set().union(*(known[m] for m in listed))
    assert covered == set(SUFFIXES)


def test_open_dialog_offers_the_readers_suffixes():
    pytest.importorskip("PySide6")
    from stackview.gui.main_window import IMAGE_FILTER

    images = IMAGE_FILTER.split(";;")[0]
    patterns = set(images[images.index("(") + 1:images.index(")")].split())
    assert patterns == {f"*{s}" for s in SUFFIXES}


def test_icons_exist_at_every_size():
    from PIL import Image

    assert (ICONS / "stackview.svg").read_text().lstrip().startswith("<?xml")
    for size in (16, 24, 32, 48, 64, 128, 256):
        with Image.open(ICONS / f"stackview-{size}.png") as im:
            assert im.size == (size, size)
            assert im.mode == "RGBA"


def test_pyinstaller_spec_builds_from_the_installed_wheel():
    """A cheap check of the spec (the build takes many minutes and is not run in CI): it takes
    stackview's code and every package data file (stackview/resources/**, the materials data)
    from the installed package, never from the checkout, so the app cannot drift from the
    wheel (tests/test_packaging_wheel.py checks that the wheel carries every resource)."""
    text = (PACKAGING / "stackview.spec").read_text(encoding="utf-8")
    compile(text, "stackview.spec", "exec")  # valid Python
    folders = sorted(p.name for p in (ROOT / "stackview" / "resources").iterdir() if p.is_dir())
    assert {"models", "samples", "pel", "contamination", "icons"} <= set(folders)
    for needed in ('collect_data_files("stackview")', 'collect_submodules("stackview")',
                   'copy_metadata', '"stackview"', '"LICENSE", "NOTICE"', "stackview_main.py",
                   "is imported from a checkout", 'collect_submodules("psygnal")',
                   'collect_submodules("superqt")', '"psygnal", "superqt"'):
        assert needed in text, needed
    assert "pathex=[]" in text
    assert 'ROOT / "stackview"' not in text and 'ROOT / "resources"' not in text
    assert (PACKAGING / "stackview_main.py").is_file()
    script = (PACKAGING / "build_and_smoke.sh").read_text(encoding="utf-8")
    assert "pip wheel" in script and "--force-reinstall" in script
    assert "pip install -q -e" not in script


@pytest.mark.parametrize("script", ["build_and_smoke.sh", "fresh_machine_check.sh",
                                    "install_desktop_entry.sh"])
def test_packaging_scripts_are_valid_bash(script):
    path = PACKAGING / script
    assert os.access(path, os.X_OK)
    subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_desktop_entry_writes_entry_types_and_icons(tmp_path):
    exe = tmp_path / "app" / "stackview"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share")}
    subprocess.run(["bash", str(PACKAGING / "install_desktop_entry.sh"), "--exec", str(exe)],
                   check=True, env=env, capture_output=True)
    share = tmp_path / "share"
    entry = desktop_entry(share / "applications" / "stackview.desktop")
    assert entry["Exec"] == f'"{exe}" gui %F'
    assert (share / "mime" / "packages" / "stackview.xml").is_file()
    assert (share / "icons" / "hicolor" / "48x48" / "apps" / "stackview.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "stackview.svg").is_file()
    bad = subprocess.run(["bash", str(PACKAGING / "install_desktop_entry.sh"), "--exec",
                          str(tmp_path / "missing")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate (desktop-file-utils) is not installed")
def test_desktop_file_passes_desktop_file_validate():
    result = subprocess.run(["desktop-file-validate", str(PACKAGING / "stackview.desktop")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout

"""stackview installs the way users install it: the wheel (and the sdist) carry every bundled
file, and the installed wheel runs the README's main job from an empty folder, outside the
repository.

The wheel is built from a copy of the working tree (tracked and untracked, not ignored, files:
what a clone plus your edits holds) with ``pip wheel --no-deps --no-build-isolation``, the
sdist with setuptools' PEP 517 hook; nothing is downloaded. The wheel goes into a fresh virtual
environment that sees this environment's packages through a ``.pth`` file (so torch & co. are
reused, not installed again) but not its editable stackview, and ``stackview analyze`` runs on
the packaged sample image. About 40 s on 2 cores, most of it the analysis.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "stackview" / "resources"
SAMPLE = "ReS2_bilayer_tedgen_sample4"
#: the README's numbers for the bundled sample (Da 0.80 Å, Db 1.95 Å over 16 windows)
EXPECTED_DA_A, EXPECTED_DB_A, TOLERANCE_A = 0.80, 1.95, 0.05


def bundled_files() -> dict[str, int]:
    """Every file the package must carry that is not Python code: path in the wheel -> size."""
    files = [p for p in RESOURCES.rglob("*") if p.is_file()]
    files += list((ROOT / "stackview" / "materials" / "data").glob("*.json"))
    return {p.relative_to(ROOT).as_posix(): p.stat().st_size for p in files
            if "__pycache__" not in p.parts}


def source_files() -> list[Path]:
    """The working tree as a clone with its edits holds it (git), else everything but the
    usual build and cache folders."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                                cwd=ROOT, capture_output=True, check=True).stdout
        paths = [ROOT / p for p in listed.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "build", "dist", "__pycache__", ".pytest_cache", "results"}
        paths = [p for p in ROOT.rglob("*") if not skip & set(p.relative_to(ROOT).parts)]
    return [p for p in paths if p.is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """A wheel and an sdist built from a copy of the working tree."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for path in source_files():
        target = src / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(base / "dist"), "."],
                   cwd=src, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                    "build_meta.build_sdist(sys.argv[1])", str(base / "sdist")],
                   cwd=src, env=env, check=True, capture_output=True)
    (wheel,) = (base / "dist").glob("stackview-*.whl")
    (sdist,) = (base / "sdist").glob("stackview-*.tar.gz")
    return {"base": base, "wheel": wheel, "sdist": sdist}


def test_the_tree_has_the_bundled_resources():
    files = bundled_files()
    for needed in ("models/ReS2_slip_bilayer.safetensors", "models/ReS2_slip_bilayer.json",
                   f"samples/{SAMPLE}.png", "pel/ReS2.csv", "contamination/README.md",
                   "icons/stackview.svg"):
        assert f"stackview/resources/{needed}" in files


def test_wheel_carries_every_bundled_file(built):
    """Fails when a file under stackview/resources (or the materials data) is not in the
    wheel, or is there with another size."""
    with zipfile.ZipFile(built["wheel"]) as wheel:
        sizes = {info.filename: info.file_size for info in wheel.infolist()}
    missing = sorted(f for f in bundled_files() if f not in sizes)
    assert not missing, f"bundled files missing from the wheel: {missing}"
    changed = sorted(f for f, size in bundled_files().items() if sizes[f] != size)
    assert not changed, f"bundled files with another size in the wheel: {changed}"
    info = next(n for n in sizes if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
    for licence in ("LICENSE", "NOTICE"):
        assert f"{info}/licenses/{licence}" in sizes
    assert "stackview/cli.py" in sizes and "stackview/gui/platform_check.py" in sizes


def test_sdist_carries_every_bundled_file(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    missing = sorted(f for f in bundled_files() if f not in names)
    assert not missing, f"bundled files missing from the sdist: {missing}"
    assert {"LICENSE", "NOTICE", "README.md", "pyproject.toml"} <= names


def fresh_venv(where: Path) -> Path:
    """A virtual environment without pip that sees this environment's site-packages through a
    .pth file: its dependencies are importable, this checkout's editable stackview is not (the
    editable finder is a .pth of its own, which a path from a .pth does not process)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    outer = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                           sysconfig.get_paths()["platlib"]])
    Path(purelib, "_stackview_test_outer_env.pth").write_text(
        "\n".join(p for p in outer if Path(p).is_dir()) + "\n")
    return python


def test_installed_wheel_runs_the_main_job_outside_the_repository(built, tmp_path):
    venv = tmp_path / "venv"
    python = fresh_venv(venv)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["STACKVIEW_DATA_DIR"] = str(tmp_path / "user-data")  # no user models: only bundled
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-index", "--no-deps", str(built["wheel"])],
                   env=env, check=True, capture_output=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    # the installed package, not this checkout; every declared dependency is satisfied
    probe = subprocess.run([str(python), "-c", """if True:
        import json
        from importlib.metadata import distribution, version
        from packaging.requirements import Requirement
        import stackview, stackview.paths as paths
        unmet = []
        for text in distribution("stackview").requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            try:
                if not req.specifier.contains(version(req.name), prereleases=True):
                    unmet.append(text)
            except Exception:
                unmet.append(text)
        print(json.dumps({"package": stackview.__file__, "sample": str(paths.SAMPLE_IMAGE),
                          "unmet": unmet}))
        """], cwd=empty, env=env, capture_output=True, text=True, check=True)
    found = json.loads(probe.stdout)
    site_dir = venv.resolve()
    assert Path(found["package"]).resolve().is_relative_to(site_dir), found
    assert not Path(found["package"]).resolve().is_relative_to(ROOT)
    assert found["unmet"] == []
    sample = Path(found["sample"])
    assert sample.resolve().is_relative_to(site_dir) and sample.is_file()

    exe = venv / ("Scripts/stackview.exe" if os.name == "nt" else "bin/stackview")
    done = subprocess.run([str(exe), "analyze", str(sample), "--material", "ReS2",
                           "--out", "results"], cwd=empty, env=env, capture_output=True,
                          text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-2000:]
    out = empty / "results" / SAMPLE
    for name in ("map.csv", "figure.png", "summary.json", "map_Da_A.tif", "map_Db_A.tif"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "ReS2_slip_bilayer"
    assert summary["n_patches"] == 16
    assert summary["reliable"] is True
    assert abs(summary["pixel_size_nm"] - 0.00379) < 0.00005
    assert abs(summary["Da_A_median"] - EXPECTED_DA_A) < TOLERANCE_A, summary["Da_A_median"]
    assert abs(summary["Db_A_median"] - EXPECTED_DB_A) < TOLERANCE_A, summary["Db_A_median"]
    # nothing written outside the output folder and the user data folder
    assert sorted(p.name for p in empty.iterdir()) == ["results"]


def test_readme_setup_command_names_the_packaged_sample():
    """The README's first set-up command (run from a clone) analyses the file the package
    ships, at the path where it now lives."""
    from stackview.paths import SAMPLE_IMAGE

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text[text.index("## Set-up"):]
    command = setup[setup.index("```bash\n") + 8:].splitlines()[0]
    assert command.startswith("python -m pip install -e . && stackview analyze ")
    image = command.split("stackview analyze ", 1)[1].split()[0]
    assert (ROOT / image).resolve() == SAMPLE_IMAGE.resolve() and SAMPLE_IMAGE.is_file()

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from stackview import __version__
from stackview.cli import build_parser, main
from stackview.io.tiff import read_tiff_pixel_size_nm


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "stackview.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_version_and_help():
    res = run_cli("--version")
    assert res.returncode == 0 and __version__ in res.stdout
    res = run_cli("--help")
    assert res.returncode == 0 and "simulate" in res.stdout and "materials" in res.stdout


def _all_subcommand_paths(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _all_subcommand_paths(sub, (*prefix, name))


def test_every_subcommand_has_help(capsys):
    paths = list(_all_subcommand_paths(build_parser()))
    assert ("simulate",) in paths and ("materials", "show") in paths
    for path in paths:
        with pytest.raises(SystemExit) as info:
            main([*path, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "usage:" in out


@pytest.mark.parametrize(
    "args, words",
    [(["simulate", "--material", "Kryptonite", "--slip", "1", "1", "--fov", "2", "--out", "x.tif"],
      "unknown material"),
     (["simulate", "--material", "ReS2", "--slip", "1", "1", "--fov", "-2", "--out", "x.tif"],
      "out of range"),
     (["simulate", "--material", "ReS2", "--slip", "1", "1", "--fov", "2", "--sampling", "7",
       "--out", "x.tif"], "out of range"),
     (["simulate", "--material", "ReS2", "--fov", "2", "--out", "x.tif"], "--slip"),
     (["simulate", "--material", "ReS2", "--slip", "1", "x", "--fov", "2", "--out", "x.tif"],
      "invalid float"),
     (["simulate", "--material", "ReS2", "--slip", "1", "1", "--fov", "2", "--defocus", "nan",
       "--out", "x.tif"], "defocus"),
     (["simulate", "--material", "MoS2", "--twist", "3", "--family", "antiparallel", "--fov", "2",
       "--out", "x.tif"], "--family"),
     (["simulate", "--material", "MoS2", "--layers", "3", "--slip", "0", "0", "--slip2", "1", "1",
       "--family", "antiparallel", "--fov", "2", "--out", "x.tif"], "bilayers"),
     (["simulate", "--material", "ReS2", "--slip", "0", "0", "--family", "antiparallel",
       "--fov", "2", "--out", "x.tif"], "one stacking family"),
     (["materials", "show", "nope"], "unknown material"),
     (["materials", "import", "/no/such/file.cif"], "does not exist")],
)
def test_bad_input_is_one_sentence_exit_2(tmp_path, args, words):
    res = subprocess.run([sys.executable, "-m", "stackview.cli", *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert words.lower() in res.stderr.lower()
    assert not list(tmp_path.glob("*.tif")) and not list(tmp_path.glob("*.json"))


def test_materials_list_and_show(capsys):
    assert main(["materials", "list"]) == 0
    out = capsys.readouterr().out
    assert "ReS2" in out and "6.4191" in out and "118.837" in out
    assert main(["materials", "show", "MoS2"]) == 0
    out = capsys.readouterr().out
    assert "a = 3.1800 Å" in out and "theta in [0°, 60°]" in out


@pytest.mark.parametrize(
    "extra, labels",
    [(["--material", "ReS2", "--slip", "1.0", "1.5"], {"Da_A": 1.0, "Db_A": 1.5}),
     (["--material", "ReSe2", "--layers", "3", "--slip", "1.0", "1.5", "--slip2", "0.5", "2"],
      {"Da_A": 1.0, "Db_A": 1.5, "Dc_A": 0.5, "Dd_A": 2.0}),
     (["--material", "MoS2", "--twist", "21.8"], {"theta_deg": 21.8}),
     (["--material", "MoS2", "--slip", "0", "0"], {"Da_A": 0.0, "Db_A": 0.0, "stacking": "AA"}),
     (["--material", "MoSe2", "--slip", "0", "0", "--family", "antiparallel"],
      {"Da_A": 0.0, "Db_A": 0.0, "family": "antiparallel", "stacking": "AB'"})],
)
def test_simulate_writes_calibrated_tiff_and_sidecar(tmp_path, extra, labels):
    out = tmp_path / "img.tif"
    assert main(["simulate", *extra, "--fov", "2", "--sampling", "0.2", "--out", str(out)]) == 0
    img = tifffile.imread(out)
    assert img.shape == (100, 100) and img.dtype == np.float32 and img.std() > 0
    assert read_tiff_pixel_size_nm(out) == pytest.approx(0.02)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["labels"] == labels
    assert meta["pixel_size_nm"] == pytest.approx(0.02)
    assert meta["optics"]["energy_kV"] == (60.0 if {"MoS2", "MoSe2"} & set(extra) else 300.0)
    assert meta["structure"].get("family", "parallel") == labels.get("family", "parallel")


def test_simulate_antiparallel_turns_the_top_layer(tmp_path):
    """Same slip, the other family: a different image (the top layer's chalcogens swap sides)."""
    images = {}
    for family in ("parallel", "antiparallel"):
        out = tmp_path / f"{family}.tif"
        assert main(["simulate", "--material", "MoS2", "--slip", "0", "0", "--family", family,
                     "--fov", "1", "--sampling", "0.2", "--out", str(out)]) == 0
        images[family] = tifffile.imread(out)
    diff = np.abs(images["parallel"] - images["antiparallel"]).max()
    assert diff > 0.05 * images["parallel"].max()


def test_simulate_overrides_optics(tmp_path):
    out = tmp_path / "d.tif"
    assert main(["simulate", "--material", "MoS2", "--slip", "0", "0", "--fov", "1",
                 "--sampling", "0.2", "--defocus", "80", "--kv", "80", "--adf", "60", "180",
                 "--out", str(out)]) == 0
    optics = json.loads(out.with_suffix(".json").read_text())["optics"]
    assert optics["defocus_A"] == 80 and optics["energy_kV"] == 80
    assert optics["adf_inner_mrad"] == 60 and optics["adf_outer_mrad"] == 180

"""``stackview style select|train|translate|evaluate`` end to end on tiny images."""

import json
import subprocess
import sys

import numpy as np
import pytest
from style_images import (
    experimental,
    lattice,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    stripes,
)

from stackview.cli import main
from stackview.style.images import save_png


def test_cli_does_not_import_torch_at_start_up():
    code = (
        "import sys, stackview.cli as c; c.build_parser(); "
        "sys.exit('torch' in sys.modules or 'sklearn' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("action", ["select", "train", "translate", "evaluate"])
def test_help(action, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["style", action, "--help"])
    assert exc.value.code == 0
    assert "usage: stackview style " + action in capsys.readouterr().out


def test_bad_input_is_one_sentence(tmp_path, capsys):
    rc = main(
        [
            "style",
            "translate",
            str(tmp_path / "nope.png"),
            "--bundle",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("stackview: error:")
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "style",
                "train",
                "--simulations",
                "x",
                "--experimental",
                "y",
                "--out",
                "o",
                "--sim-sampling-nm",
                "-1",
            ]
        )
    assert exc.value.code == 2
    capsys.readouterr()
    save_png(tmp_path / "s" / "sim.png", lattice(48))
    save_png(tmp_path / "e" / "exp.png", experimental(48))
    rc = main(["style", "train", "--simulations", str(tmp_path / "s"), "--experimental",
               str(tmp_path / "e"), "--sim-sampling-nm", "0.02", "--exp-sampling-nm", "0.02",
               "--structure-weight", "-1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "(--structure-weight) must not be negative" in err


def test_cli_end_to_end(tmp_path, capsys):
    sims, exps = tmp_path / "sims", tmp_path / "exp"
    for i in range(4):
        save_png(sims / f"lat{i}.png", lattice(72, shift=(i, 2 * i)))
    for i in range(3):
        save_png(sims / f"stripe{i}.png", stripes(72, period_px=8 + i, theta=0.5 * i))
    for i in range(2):
        save_png(exps / f"exp{i}.png", experimental(72, seed=i))
    common = ["--sim-sampling-nm", "0.02", "--exp-sampling-nm", "0.02"]

    assert (
        main(
            [
                "style",
                "select",
                "--simulations",
                str(sims),
                "--experimental",
                str(exps),
                *common,
                "--out",
                str(tmp_path / "sel"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "features: spectral" in out
    chosen = json.loads((tmp_path / "sel" / "selection.json").read_text())["chosen"]
    assert chosen and all("lat" in c for c in chosen)

    model = tmp_path / "model"
    args = [
        "style",
        "train",
        "--selection",
        str(tmp_path / "sel" / "selection.json"),
        "--experimental",
        str(exps),
        *common,
        "--config",
        "tiny",
        "--iterations",
        "3",
        "--checkpoint-every",
        "2",
        "--preview-every",
        "2",
        "--material",
        "test",
        "--microscope",
        "300 kV",
        "--out",
        str(model),
    ]
    assert main(args) == 0
    card = json.loads((model / "style.json").read_text())
    assert card["training"]["iterations"] == 3 and card["selection"]["feature_kind"] == "spectral"
    assert card["microscope"] == {"description": "300 kV"} and card["sampling_A"] == 0.2
    assert (model / "previews" / "iter_000002.png").is_file()
    # resume with more iterations continues from the checkpoint
    assert (
        main(
            args[: args.index("--iterations") + 1]
            + ["4"]
            + args[args.index("--iterations") + 2 :]
            + ["--resume"]
        )
        == 0
    )
    assert json.loads((model / "style.json").read_text())["training"]["iterations"] == 4

    assert (
        main(
            [
                "style",
                "translate",
                str(sims / "lat0.png"),
                str(sims / "lat1.png"),
                "--bundle",
                str(model),
                "--out",
                str(tmp_path / "tr"),
                "--seed",
                "1",
                "--format",
                "npy",
            ]
        )
        == 0
    )
    out = np.load(tmp_path / "tr" / "lat0.npy")
    assert out.shape == (72, 72) and 0 <= out.min() <= out.max() <= 1

    capsys.readouterr()
    assert (
        main(
            [
                "style",
                "evaluate",
                "--bundle",
                str(model / "style.json"),
                "--simulations",
                str(sims / "lat0.png"),
                "--experimental",
                str(exps),
                *common,
                "--out",
                str(tmp_path / "ev"),
                "--update-card",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    for row in ("noise-free", "gaussian", "physics", "DRIT style"):
        assert row in table
    assert "evaluation" in json.loads((model / "style.json").read_text())["metrics"]
    assert (tmp_path / "ev" / "evaluation.png").is_file()


def test_one_pixel_size_per_experimental_image(tmp_path, capsys):
    from stackview.workflows.style import load_set

    exps = tmp_path / "exp"
    for i in range(2):
        save_png(exps / f"exp{i}.png", experimental(72, seed=i))
    _, same, _ = load_set([str(exps)], [0.02], 0.2)
    _, own, _ = load_set([str(exps)], [0.02, 0.04], 0.2)
    assert same[1].shape == (72, 72) and own[0].shape == (72, 72)
    assert own[1].shape == (144, 144)  # 0.04 nm/px resampled to 0.02 nm/px
    sims = tmp_path / "sims"
    for i in range(3):
        save_png(sims / f"lat{i}.png", lattice(72, shift=(i, 2 * i)))
    rc = main(["style", "select", "--simulations", str(sims), "--experimental", str(exps),
               "--sim-sampling-nm", "0.02", "--exp-sampling-nm", "0.02", "0.03", "0.04",
               "--out", str(tmp_path / "sel")])
    err = capsys.readouterr().err
    assert rc == 2 and "one per image: 3 sizes for 2 images" in err and err.count("\n") == 1

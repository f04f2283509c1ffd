"""The workflows layer: one model card for the CLI and the wizard, job configuration <-> command
line round trips, provenance from the argv given to main, the shared options and the one
cancel / exit-code wrapper."""

import argparse
import json
import shlex
import sys

import pytest

from stackview.cli import build_parser, main, parse_job
from stackview.datasets.spec import DatasetSpec
from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import Cancelled
from stackview.gui.wizard import runner
from stackview.gui.wizard.project import Project
from stackview.inference.train import TrainConfig
from stackview.workflows.commandline import command_text
from stackview.workflows.dataset import DatasetJob, dataset_argv
from stackview.workflows.evaluate import EvaluateJob, evaluate_argv
from stackview.workflows.train import TrainJob, train_argv

#: card entries that differ between two runs of the same job (clock and speed)
VOLATILE = {"created": None, "training": ("seconds", "images_per_s")}


def _project(tmp_path, **material):
    p = Project.open(tmp_path / "proj")
    p.update("material", **({"name": "ReS2", "task": "slip", "layers": 2} | material))
    p.update("imaging", sampling_A=0.2)
    p.update("style", skip=True)
    p.update("dataset", count=8, patch_px=32, test_count=4)
    p.update("regressor", backbone="tiny", steps=3, batch_size=4)
    p.update("finish", name="card-check")
    return p


def _stable(card: dict) -> dict:
    out = {k: v for k, v in card.items() if k != "created"}
    out["training"] = {k: v for k, v in card["training"].items()
                       if k not in VOLATILE["training"]}
    return out


def test_cli_and_wizard_write_identical_model_cards(tmp_path):
    p = _project(tmp_path)
    fn, _ = runner.dataset_job(p)
    fn(progress=null_progress, cancel=CancelToken())
    fn, command = runner.regressor_job(p)
    fn(progress=null_progress, cancel=CancelToken())
    stem = runner.bundle_stem(p)
    card_path = stem.with_name(stem.name + ".json")
    wizard_card = json.loads(card_path.read_text(encoding="utf-8"))
    # the same job from the command line the wizard shows (its bundle and checkpoints moved
    # away first, so the CLI starts from nothing as the wizard did)
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in stem.parent.iterdir():
        path.rename(aside / path.name)
    assert main(shlex.split(command)[1:]) == 0
    cli_card = json.loads(card_path.read_text(encoding="utf-8"))
    assert cli_card["training"]["command"] == command
    assert cli_card["description"].startswith("trained with the stackview wizard")
    assert _stable(cli_card) == _stable(wizard_card)


@pytest.mark.parametrize("material", [
    {"name": "ReS2", "task": "slip", "layers": 2},
    {"name": "ReS2", "task": "slip", "layers": 3},
    {"name": "MoS2", "task": "twist", "layers": 2},
])
def test_wizard_jobs_round_trip_through_their_command_lines(tmp_path, material):
    p = _project(tmp_path, **material)
    p.update("regressor", init_from="ReS2_slip_bilayer")
    for test in (False, True):
        job = runner.dataset_job_config(runner.dataset_spec(p, test=test), tmp_path / "d.zarr")
        assert parse_job(runner.dataset_command(job.spec, tmp_path / "d.zarr")) == job
    job = runner.train_job(p, resume=True)
    _, command = runner.regressor_job(p, resume=True)
    assert parse_job(command) == job
    assert parse_job(runner.evaluation_job(p)[1]) == runner.evaluate_job(p)


def test_dataset_grid_and_physics_round_trip(tmp_path):
    spec = DatasetSpec(task="slip", material="ReS2", layers=2, mode="grid", step_A=0.25,
                       count=2, sampling_A=0.17, patch_px=48, psnr_range_dB=(7.5, 30.0),
                       vacancy_range=(0.0, 0.05), style="physics",
                       physics={"dose_per_px": [20.0, 100.0], "gamma": 1.0}, seed=3)
    job = DatasetJob(spec=spec, out=str(tmp_path / "g.zarr"), scheduler="sync", workers=2,
                     overwrite=True)
    assert parse_job(dataset_argv(job)) == job
    twist = DatasetJob(spec=DatasetSpec(task="twist", material="MoS2", mode="grid",
                                        theta_step_deg=2.5, theta_range_deg=(1.0, 59.0)),
                       out="t.zarr")
    assert parse_job(dataset_argv(twist)) == twist


def test_train_and_evaluate_round_trip_with_every_option():
    config = TrainConfig(steps=12, batch_size=6, lr=3.3e-4, warmup_steps=2, seed=5,
                         precision="fp32", channels_last=False, threads=2, checkpoint_every=4,
                         validate_every=3, context_consistency=10.0, label_error_weight=1.5,
                         consistency_label_weight=20.0,
                         teacher_weight=50.0, freeze_through="layer2",
                         augment={"psnr_range_dB": (7.0, 30.0), "mask_probability": 0.25,
                                  "contamination_probability": 0.5, "gamma_range": (0.8, 1.2)})
    job = TrainJob(datasets=("a.zarr", "b.zarr"), out="models/x", backbone="resnet18",
                   head="direct", config=config, validation="v.zarr",
                   eval_datasets=("t.zarr",), checkpoint_dir="ck", resume=True,
                   init_from="ReS2_slip_bilayer", description="a 'quoted' text",
                   fp32_weights=True, context_px=32, window_px=128, teacher="ReS2_slip_bilayer")
    assert parse_job(train_argv(job)) == job
    assert parse_job(command_text(train_argv(job))) == job
    ev = EvaluateJob(bundle="models/x", dataset="t.zarr", out="rep", tta=True, max_samples=9,
                     update_card="held-out", device="cpu")
    assert parse_job(evaluate_argv(ev)) == ev
    # and the CLI's defaults are a job too
    minimal = parse_job(["train", "--dataset", "a.zarr", "--out", "m"])
    assert minimal == TrainJob(datasets=("a.zarr",), out="m", config=TrainConfig(steps=10000))
    assert parse_job(train_argv(minimal)) == minimal


def test_provenance_is_the_argv_given_to_main(tmp_path, monkeypatch):
    from stackview.datasets.store import open_dataset

    out = tmp_path / "p.zarr"
    argv = ["dataset", "make", str(out), "--count", "2", "--patch-px", "32", "--sampling",
            "0.25", "--defocus", "40", "--source-size", "0.65", "--chunk", "2",
            "--scheduler", "sync", "--material", "ReS2", "--seed", "1"]
    monkeypatch.setattr(sys, "argv", ["something", "else", "entirely"])
    assert main(argv) == 0
    assert open_dataset(out).attrs["command"] == "stackview " + shlex.join(argv)


def test_a_cancelled_job_exits_130_with_its_hint(tmp_path, monkeypatch, capsys):
    import stackview.workflows.dataset as wd

    def cancelled(*args, **kwargs):
        raise Cancelled()

    monkeypatch.setattr(wd, "make_dataset", cancelled)
    assert main(["dataset", "make", str(tmp_path / "c.zarr"), "--count", "2"]) == 130
    assert capsys.readouterr().err.strip() == (
        "stackview: cancelled; run the same command with --resume to continue.")


def _actions(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        else:
            yield path, action


def test_shared_options_are_defined_once():
    devices = [(path, a) for path, a in _actions(build_parser()) if "--device" in a.option_strings]
    assert len(devices) >= 4  # analyze, evaluate, style train, style translate
    assert {a.default for _, a in devices} == {"auto"}
    assert len({a.help for _, a in devices}) == 1
    outs = [path for path, a in _actions(build_parser()) if "--out" in a.option_strings]
    assert len(outs) >= 9


# --- analyse, style and PEL ------------------------------------------------------------------
def test_analyze_round_trip_with_every_option():
    from stackview.workflows.analyze import AnalyzeJob, analyze_argv

    job = AnalyzeJob(inputs=("a.tif", "folder"), out="res", model="models/x", material="ReS2",
                     task="twist", pixel_size_nm=0.0123, window_nm=2.5, stride_nm=0.25, refine=True,
                     fine_stride_nm=0.05, roi_nm=(0.5, 1.0, 10.0, 12.5), n_views=1,
                     undistort=False, device="cpu", fit=True, pel="auto", figure_format="svg",
                     mode="window")
    assert parse_job(analyze_argv(job)) == job
    with_csv = AnalyzeJob(inputs=("a.tif",), out="r", pel="my pel.csv")
    assert parse_job(command_text(analyze_argv(with_csv))) == with_csv
    # the CLI's defaults are the job's
    minimal = parse_job(["analyze", "a.tif", "--out", "r"])
    assert minimal == AnalyzeJob(inputs=("a.tif",), out="r")
    assert analyze_argv(minimal) == ["analyze", "a.tif", "--out", "r"]


def test_analyze_job_checks_its_settings_and_reads_the_sessions():
    from stackview.errors import UsageError
    from stackview.session.model import AnalysisSettings
    from stackview.workflows.analyze import AnalyzeJob, analyze_argv

    for bad in ({"n_views": 9}, {"stride_nm": 0.0}, {"figure_format": "jpg"},
                {"roi_nm": (1.0, 2.0)}, {"task": "tilt"}, {"mode": "fast"}):
        with pytest.raises(UsageError):
            AnalyzeJob(inputs=("a.tif",), out="r", **bad)
    with pytest.raises(UsageError, match="output folder"):
        analyze_argv(AnalyzeJob(inputs=("a.tif",)))
    # the window's settings are a job: the same as the command that states them
    settings = AnalysisSettings(model=None, material="MoS2", pixel_size_nm=0.02, window_nm=2.0,
                                stride_nm=0.4, refine=True, roi_nm=(0, 0, 5, 5), n_views=2,
                                fit=True)
    job = AnalyzeJob.from_settings(settings, ["a.tif"], out="r")
    assert job == parse_job(["analyze", "a.tif", "--out", "r", "--material", "MoS2",
                             "--pixel-size", "0.02", "--window", "2", "--stride", "0.4",
                             "--refine", "--roi", "0", "0", "5", "5", "--views", "2", "--fit"])


def test_style_jobs_round_trip_with_every_option():
    from stackview.workflows.style import (
        StyleEvaluateJob,
        StyleSelectJob,
        StyleTrainJob,
        StyleTranslateJob,
        style_evaluate_argv,
        style_select_argv,
        style_train_argv,
        style_translate_argv,
    )

    select = StyleSelectJob(simulations=("s1.png", "sims"), experimental=("e1.tif", "e2.tif"),
                            out="sel", sim_sampling_nm=0.012, exp_sampling_nm=(0.02, 0.03),
                            features="spectral", perplexity=5.0, keep=0.5, min_keep=3, seed=2)
    assert parse_job(style_select_argv(select)) == select
    train = StyleTrainJob(experimental=("exp",), out="st", simulations=("sims", "more"),
                          sim_sampling_nm=0.012, exp_sampling_nm=(0.02,), sampling_nm=0.015,
                          config="tiny", iterations=40, image_px=64, width=8, batch_size=2,
                          content_consistency=False, consistency_weight=2.5,
                          structure_weight=0.5, clip_percentile=0.5, material="ReS2",
                          microscope="300 kV, 21.3 mrad", seed=4, checkpoint_every=10,
                          preview_every=0, log_every=5, threads=0, device="cpu", resume=True,
                          init_from="old/style")
    assert parse_job(command_text(style_train_argv(train))) == train
    from_selection = StyleTrainJob(experimental=("exp",), out="st", selection="sel/selection.json")
    assert parse_job(style_train_argv(from_selection)) == from_selection
    for translate in (
            StyleTranslateJob(inputs=("a.png", "stack.npy"), bundle="st", out="o", seed=3,
                              diverse=True, input_sampling_nm=0.012, tile_px=256, overlap_px=16,
                              format="npy", device="cpu", bf16=True),
            StyleTranslateJob(inputs=("a.png",), bundle="st", out="o", attribute=(0.5, -1.25))):
        assert parse_job(style_translate_argv(translate)) == translate
    evaluate = StyleEvaluateJob(simulations=("s",), experimental=("e",), bundles=("a", "b"),
                                sim_sampling_nm=0.012, exp_sampling_nm=(0.02, 0.021),
                                sampling_nm=0.015, min_distance_nm=0.2, seed=1, out="ev",
                                update_card=True)
    assert parse_job(style_evaluate_argv(evaluate)) == evaluate
    # the CLI's defaults are the jobs'
    assert parse_job(["style", "select", "--simulations", "s", "--experimental", "e", "--out",
                      "o"]) == StyleSelectJob(simulations=("s",), experimental=("e",), out="o")
    assert parse_job(["style", "translate", "a", "--bundle", "b", "--out", "o"]) == \
        StyleTranslateJob(inputs=("a",), bundle="b", out="o")


def test_pel_round_trip_and_provenance_from_main(monkeypatch):
    import stackview.pel.compute as compute
    from stackview.errors import UsageError
    from stackview.workflows.pel import PelJob, make_landscape, pel_argv

    job = PelJob(material="MoS2", family="antiparallel", grid=6, relax="none",
                 calculator="chgnet", interlayer_A=6.5, workers=2, threads=3, recompute=True,
                 cache=False, out="p.csv", figure="p.png", slips="map.csv")
    assert parse_job(pel_argv(job)) == job
    imported = PelJob(material="ReS2", import_csv="my dft.csv")
    assert parse_job(command_text(pel_argv(imported))) == imported
    assert parse_job(["pel", "--material", "ReS2"]) == PelJob(material="ReS2")
    with pytest.raises(UsageError, match="--slips needs --figure"):
        PelJob(material="ReS2", slips="map.csv")
    # a computed landscape records the argv given to main (from the CLI), else the job's
    # command line
    seen = []

    def compute_landscape(material, settings, **kwargs):
        seen.append(kwargs["command"])
        raise UsageError("stop here")

    monkeypatch.setattr(compute, "compute_landscape", compute_landscape)
    argv = ["pel", "--material", "MoS2", "--grid", "5", "--workers", "1", "--recompute"]
    assert main(argv) == 2
    assert seen[-1] == "stackview " + shlex.join(argv)
    plain = PelJob(material="MoS2", grid=5, recompute=True)
    with pytest.raises(UsageError):
        make_landscape(plain)
    assert seen[-1] == command_text(pel_argv(plain))
    assert parse_job(seen[-1]) == plain


def test_wizard_style_steps_show_their_jobs_command_lines(tmp_path):
    p = _project(tmp_path)
    p["images"].extend([{"path": str(tmp_path / "e1.tif"), "sampling_nm": 0.02},
                        {"path": str(tmp_path / "e2.tif"), "sampling_nm": 0.03}])
    p.update("selection", keep=6)
    p.update("style", skip=False, config="tiny", iterations=20)
    _, command = runner.selection_job(p)
    assert command.startswith("stackview style select ")
    assert parse_job(command) == runner.selection_config(p)
    for resume in (False, True):
        _, command = runner.style_job(p, resume=resume)
        job = runner.style_train_config(p, resume=resume)
        assert parse_job(command) == job
        assert job.selection == str(p.path("selection", "selection.json"))
        assert job.exp_sampling_nm == (0.02, 0.03) and job.iterations == 20
        assert job.checkpoint_every == job.preview_every == job.log_every == 2


def test_analyze_one_passes_every_setting_of_the_job(monkeypatch):
    """What the window runs: the job's settings reach analyze_image unchanged, with the
    window's loaded model."""
    import stackview.analysis.analyze as analyze
    from stackview.workflows.analyze import AnalyzeJob, analyze_one

    seen = {}
    monkeypatch.setattr(analyze, "analyze_image", lambda image, **kw: seen.update(kw, image=image))
    job = AnalyzeJob(inputs=("a.tif",), model="ignored", material="ReS2", pixel_size_nm=0.01,
                     window_nm=2.0, stride_nm=0.3, refine=True, fine_stride_nm=0.05,
                     roi_nm=(0, 0, 4, 4), n_views=2, undistort=False, device="cpu", fit=True,
                     task="slip", mode="dense")
    bundle = object()
    analyze_one(job, "a.tif", bundle=bundle)
    assert seen.pop("image") == "a.tif" and seen.pop("bundle") is bundle
    assert seen.pop("model") is None and str(seen.pop("device")) == "cpu"
    seen.pop("progress"), seen.pop("cancel")
    assert seen == {"material": "ReS2", "task": "slip", "pixel_size_nm": 0.01, "window_nm": 2.0,
                    "stride_nm": 0.3, "refine": True, "fine_stride_nm": 0.05,
                    "roi_nm": (0.0, 0.0, 4.0, 4.0), "n_views": 2, "undistort": False,
                    "fit": True, "mode": "dense"}

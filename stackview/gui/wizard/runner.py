"""The wizard's heavy steps as plain job functions ``fn(progress, cancel)`` (no Qt here).

Each ``*_job(project)`` returns ``(fn, command)``: the same job the CLI runs (the functions of
:mod:`stackview.workflows`: ``stackview dataset make``, ``style select``, ``style train``,
``train``, ``evaluate``) and its command line, made from the job's configuration by the
workflows' ``*_argv`` functions (:func:`stackview.cli.parse_job` reads it back into the same
configuration), so a user can move a heavy step to a cluster or a GPU machine and get the same
result and the same model card. The GUI runs ``fn`` on its worker; tests may call it directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stackview.errors import UsageError
from stackview.gui.wizard.project import Project
from stackview.workflows.commandline import command_text

#: rough cost of one simulated 128² patch on one core (incoherent simulator, measured ~1–5 ms
#: per 256² patch plus structure building); used only for the estimate shown before a run
SECONDS_PER_PATCH_128 = 0.02


def _nm(value_A: float) -> float:
    return value_A / 10


# --------------------------------------------------------------------------- imaging
def optics_preset(project: Project) -> str:
    """The optics of the project's imaging conditions as ``DatasetSpec`` and ``stackview dataset
    make --optics`` take them: a preset's name when they match one, else the custom-conditions
    text of :func:`stackview.simulation.optics_text` (so the command line runs anywhere)."""
    from stackview.simulation import PRESETS, Optics, optics_text

    im = project["imaging"]
    optics = Optics(energy_kV=im["energy_kV"], convergence_mrad=im["convergence_mrad"],
                    adf_inner_mrad=im["adf_inner_mrad"], adf_outer_mrad=im["adf_outer_mrad"])
    keys = ("energy_kV", "convergence_mrad", "adf_inner_mrad", "adf_outer_mrad")
    for name, preset in PRESETS.items():
        if all(abs(getattr(preset, k) - getattr(optics, k)) < 1e-9 for k in keys):
            return name
    return optics_text(optics)


def dataset_spec(project: Project, test: bool = False):
    """The :class:`DatasetSpec` of the project's training (or held-out test) dataset."""
    from stackview.datasets.spec import DatasetSpec

    m, im, d = project["material"], project["imaging"], project["dataset"]
    style = project["style"]
    kwargs = {}
    if style["skip"] or not style["bundle"]:
        kwargs["style"] = "physics"
    else:
        kwargs.update(style="drit", style_bundle=style["bundle"], style_diverse=True)
    grid = d["mode"] == "grid" and m["task"] == "slip" and not test
    count = int(d["test_count"] if test else (1 if grid else d["count"]))
    if m["task"] == "twist":  # count patches: angles × positions across one moiré period
        kwargs["positions"] = max(1, min(16, count))
    if grid:  # the grid's step (random labels have none)
        kwargs["step_A"] = float(d["step_A"])
    return DatasetSpec(
        task=m["task"], material=m["name"], layers=int(m["layers"]),
        mode="grid" if grid else "random",
        count=count, sampling_A=float(im["sampling_A"]),
        patch_px=int(d["patch_px"]), optics=optics_preset(project),
        defocus_A=tuple(im["defocus_A"]), source_size_A=tuple(im["source_size_A"]),
        vacancy_range=(0.0, float(d["vacancies"])), hole_probability=float(d["holes"]),
        contamination_probability=float(d["contamination"]),
        psnr_range_dB=tuple(d["psnr"]) if d["psnr"] else None,
        seed=1000 if test else 0, chunk=min(32, int(d["test_count"] if test else d["count"])),
        **kwargs,
    )


def dataset_job_config(spec, out: Path):
    """The :class:`~stackview.workflows.dataset.DatasetJob` of a wizard dataset (shown with
    ``--resume``: run again, it continues an interrupted run)."""
    from stackview.workflows.dataset import DatasetJob

    return DatasetJob(spec=spec, out=str(out), resume=True)


def dataset_command(spec, out: Path) -> str:
    from stackview.workflows.dataset import dataset_argv

    return command_text(dataset_argv(dataset_job_config(spec, out)))


def _make(spec, out: Path, progress, cancel) -> Path:
    """``dataset make`` as the wizard runs it: resumed when a partial store is there, else
    made afresh; the command shown is the one recorded."""
    from stackview.workflows.dataset import continue_or_start, make_dataset

    job = dataset_job_config(spec, out)
    return make_dataset(continue_or_start(job), command=dataset_command(spec, out),
                        progress=progress, cancel=cancel)


def window_text(project) -> str:
    """The window the patch size makes, in nm, and for twist what such a window can read."""
    from stackview.analysis.twist_bounds import resolvable_limit_deg
    from stackview.core.labels import TwistLabels
    from stackview.materials import get_material

    m, d = project["material"], project["dataset"]
    window_nm = int(d["patch_px"]) * float(project["imaging"]["sampling_A"]) / 10.0
    text = f"Each patch is the model's analysis window: {window_nm:.2f} nm."
    if m["task"] == "twist":
        material = get_material(m["name"])
        lo, hi = TwistLabels(material).domain_deg
        limit = resolvable_limit_deg(material.a_A, window_nm)
        text += (f" A twist model with it reads θ from {lo + limit:.1f}° to {hi - limit:.1f}°; "
                 "nearer alignment its moiré is longer than the window holds and the analysis "
                 "gives a bound. Smaller windows map finer and fit smaller images; larger ones "
                 "read angles nearer alignment.")
    return text


def dataset_estimate(project: Project) -> tuple[int, float, int]:
    """(patches, seconds, bytes) of the training + test datasets before they are made."""
    spec, test = dataset_spec(project), dataset_spec(project, test=True)
    if spec.mode == "grid":
        from stackview.core.labels import SlipLabels

        space = SlipLabels(spec.material, layers=spec.layers)
        try:
            n = len(space.grid(spec.step_A)) * spec.count
        except Exception:  # noqa: BLE001  (an estimate only)
            n = spec.count
    else:
        n = spec.count
    if spec.task == "twist":
        n = max(1, spec.count // spec.positions) * spec.positions
    total = n + (max(1, test.count // test.positions) * test.positions
                 if test.task == "twist" else test.count)
    per = SECONDS_PER_PATCH_128 * (spec.patch_px / 128) ** 2
    if spec.style == "drit":
        per *= 3
    return total, total * per, int(total * spec.patch_px ** 2 * 2 * 0.9)


# --------------------------------------------------------------------------- selection
def candidates_job(project: Project):
    """Simulate noise-free candidate images for the selection into ``candidates/``."""
    from stackview.datasets.spec import DatasetSpec

    m, im, sel = project["material"], project["imaging"], project["selection"]
    spec = DatasetSpec(task=m["task"], material=m["name"], layers=int(m["layers"]),
                       count=int(sel["candidates"]), sampling_A=float(im["sampling_A"]),
                       patch_px=int(sel["candidate_px"]), optics=optics_preset(project),
                       defocus_A=tuple(im["defocus_A"]), source_size_A=tuple(im["source_size_A"]),
                       seed=7, chunk=min(32, int(sel["candidates"])))
    zarr_path = project.path("candidates", "candidates.zarr")
    folder = project.path("candidates", "images")

    def fn(progress, cancel):
        from stackview.datasets.store import open_dataset
        from stackview.style.images import save_image

        ds = open_dataset(_make(spec, zarr_path, progress, cancel))
        images, _ = ds.get(np.arange(len(ds)))
        paths = []
        for i, img in enumerate(images):
            p = folder / f"sim_{i:04d}.tif"
            save_image(p, img)
            paths.append(str(p))
        return paths

    return fn, dataset_command(spec, zarr_path)


def _exp_sampling_nm(project: Project) -> tuple[float, ...] | None:
    """The experimental images' pixel sizes for ``--exp-sampling-nm`` (one for all when they
    agree); None when one is unknown (the files' own calibration then)."""
    samplings = [i.get("sampling_nm") for i in project["images"]]
    if not samplings or None in samplings:
        return None
    return tuple(samplings[:1] if len(set(samplings)) == 1 else samplings)


def selection_config(project: Project):
    """The :class:`~stackview.workflows.style.StyleSelectJob` of the selection step: the
    candidates against the experimental images, at the project's sampling."""
    from stackview.workflows.style import StyleSelectJob

    sel, im = project["selection"], project["imaging"]
    return StyleSelectJob(
        simulations=(project.path("candidates", "images"),),
        experimental=tuple(i["path"] for i in project["images"]),
        out=project.path("selection"), sim_sampling_nm=_nm(im["sampling_A"]),
        exp_sampling_nm=_exp_sampling_nm(project), keep=int(sel["keep"]) or None,
        min_keep=max(1, min(4, int(sel["candidates"]))))


def selection_job(project: Project):
    """Trident selection (features, t-SNE, k-means) of the candidates against the images:
    ``stackview style select`` (:func:`~stackview.workflows.style.select_style_simulations`)."""
    from stackview.workflows.style import style_select_argv

    job = selection_config(project)
    command = command_text(style_select_argv(job))

    def fn(progress, cancel):
        from stackview.workflows.style import select_style_simulations

        if len(sorted(project.path("candidates", "images").glob("sim_*.tif"))) < 2:
            raise UsageError("simulate the candidates first")
        return select_style_simulations(job, progress=progress, cancel=cancel)

    return fn, command


def load_selection_plot(project: Project) -> dict | None:
    """The saved selection (embedding, names, clusters) or None."""
    path = project.path("selection", "selection.json")
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    points = data["simulations"] + data["experimental"]
    return {"embedding": [[p["x"], p["y"]] for p in points],
            "simulations": [p["name"] for p in data["simulations"]],
            "feature_kind": data.get("feature_kind", ""),
            "feature_note": data.get("feature_note", "")}


def save_chosen(project: Project, chosen: list[str]) -> None:
    """Store the user's adjusted choice in the project and in ``selection.json`` (so that
    ``stackview style train --selection`` uses the same simulations)."""
    from stackview.io.atomic import write_text_atomic

    project.update("selection", chosen=list(chosen))
    path = project.path("selection", "selection.json")
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        data["chosen"] = list(chosen)
        for item in data["simulations"]:
            item["chosen"] = item["name"] in chosen
        write_text_atomic(path, json.dumps(data, indent=1))


# --------------------------------------------------------------------------- style
def style_config(project: Project):
    from stackview.style.config import get_preset

    st = project["style"]
    cfg = get_preset(st["config"]).replace(sampling_A=float(project["imaging"]["sampling_A"]))
    changes = {k: int(st[k]) for k in ("iterations", "image_px") if int(st[k] or 0) > 0}
    return cfg.replace(**changes) if changes else cfg


def style_train_config(project: Project, resume: bool = False):
    """The :class:`~stackview.workflows.style.StyleTrainJob` of the style step: DRIT on the
    simulations the selection chose (``selection.json``, which keeps the user's adjusted
    choice) and the experimental images, at the project's sampling."""
    from stackview.workflows.style import StyleTrainJob

    st, im = project["style"], project["imaging"]
    every = max(1, style_config(project).iterations // 10)
    sizes = {k: int(st[k]) for k in ("iterations", "image_px") if int(st[k] or 0) > 0}
    return StyleTrainJob(
        experimental=tuple(i["path"] for i in project["images"]),
        out=project.path("style"), selection=project.path("selection", "selection.json"),
        sim_sampling_nm=_nm(im["sampling_A"]), exp_sampling_nm=_exp_sampling_nm(project),
        sampling_nm=_nm(im["sampling_A"]), config=st["config"],
        material=project["material"]["name"], checkpoint_every=every, preview_every=every,
        log_every=every, threads=0, resume=resume, **sizes)


def style_job(project: Project, resume: bool = False):
    """DRIT training on the chosen simulations and the experimental images (``style/``):
    ``stackview style train`` (:func:`~stackview.workflows.style.train_style_model`)."""
    from stackview.workflows.style import style_train_argv

    job = style_train_config(project, resume=resume)
    command = command_text(style_train_argv(job))

    def fn(progress, cancel):
        from stackview.workflows.style import train_style_model

        if not project["selection"]["chosen"]:
            raise UsageError("choose at least one simulation on the selection page")
        return train_style_model(job, command=command, progress=progress, cancel=cancel)

    return fn, command


def style_history(project: Project) -> list[dict]:
    path = project.path("style", "history.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def latest_preview(project: Project) -> Path | None:
    previews = sorted(project.path("style", "previews").glob("iter_*.png"))
    return previews[-1] if previews else None


# --------------------------------------------------------------------------- dataset
def dataset_job(project: Project):
    """Training and held-out test datasets (``data/train.zarr``, ``data/test.zarr``)."""
    train_path, test_path = project.path("data", "train.zarr"), project.path("data", "test.zarr")
    spec, test = dataset_spec(project), dataset_spec(project, test=True)
    command = dataset_command(spec, train_path) + "\n" + dataset_command(test, test_path)

    def fn(progress, cancel):
        return [_make(s, p, progress, cancel) for s, p in ((spec, train_path), (test, test_path))]

    return fn, command


# --------------------------------------------------------------------------- regressor
def regressor_spec(project: Project):
    from stackview.inference.regressor import RegressorSpec

    m = project["material"]
    return RegressorSpec(backbone=project["regressor"]["backbone"], task=m["task"],
                         material=m["name"], layers=int(m["layers"]), head="invariant")


def start_models(project: Project, backbone: str | None = None) -> list[str]:
    """Installed or bundled models a new regressor can start from (transfer): the same task,
    layer count, backbone and head, any material — e.g. the ReS2 slip model for ReSe2."""
    from stackview.models.registry import list_models

    spec = regressor_spec(project)
    want = {"task": spec.task, "layers": spec.layers, "backbone": backbone or spec.backbone,
            "head": spec.head}
    return [e.name for e in list_models()
            if all(e.card.spec.get(k) == v for k, v in want.items())]


def bundle_stem(project: Project) -> Path:
    name = project["finish"]["name"] or default_model_name(project)
    return project.path("model", name)


def default_model_name(project: Project) -> str:
    m = project["material"]
    return f"{m['name']}-{m['task']}-{m['layers']}L-wizard"


def train_job(project: Project, resume: bool = False):
    """The :class:`~stackview.workflows.train.TrainJob` of the project's regressor."""
    from stackview.inference.train import TrainConfig
    from stackview.workflows.train import TrainJob

    r = project["regressor"]
    steps = int(r["steps"])
    config = TrainConfig(steps=steps, batch_size=int(r["batch_size"]), lr=float(r["lr"]),
                         checkpoint_every=max(1, steps // 10))
    return TrainJob(
        datasets=(str(project.path("data", "train.zarr")),), out=str(bundle_stem(project)),
        checkpoint_dir=str(project.path("model", "checkpoints")), backbone=r["backbone"],
        head=regressor_spec(project).head, config=config,
        init_from=r.get("init_from") or None, resume=resume,
        description=f"trained with the stackview wizard (project {project.folder.name})")


def regressor_job(project: Project, resume: bool = False):
    """Train the regressor on ``data/train.zarr`` into the bundle ``model/NAME``: the job of
    ``stackview train`` (:func:`stackview.workflows.train.train_model`), so its card is the one
    the shown command writes."""
    from stackview.workflows.train import train_argv

    job = train_job(project, resume=resume)
    command = command_text(train_argv(job))

    def fn(progress, cancel):
        from stackview.workflows.train import train_model

        out = train_model(job, command=command, progress=progress, cancel=cancel)
        return {"bundle": job.out, "weights": str(out.weights), "history": out.result.history,
                "device": out.card.training["device"]}

    return fn, command


# --------------------------------------------------------------------------- evaluation
def evaluate_job(project: Project):
    """The :class:`~stackview.workflows.evaluate.EvaluateJob` of the project's evaluation."""
    from stackview.workflows.evaluate import EvaluateJob

    return EvaluateJob(bundle=str(bundle_stem(project)),
                       dataset=str(project.path("data", "test.zarr")),
                       out=str(project.path("evaluation")), update_card="wizard-test")


def evaluation_job(project: Project):
    """Accuracy of the bundle on ``data/test.zarr``; report in ``evaluation/``."""
    from stackview.workflows.evaluate import evaluate_argv

    job = evaluate_job(project)
    command = command_text(evaluate_argv(job))

    def fn(progress, cancel):
        from stackview.workflows.evaluate import evaluate_model

        res = evaluate_model(job, progress=progress, cancel=cancel,
                             title=f"{Path(job.bundle).name} on held-out data")
        m = res["metrics"]
        errors = prediction_errors(res["bundle"].label_space, res["predicted"], res["true"])
        return {"metrics": m, "errors": errors.tolist(), "report": job.out}

    return fn, command


def prediction_errors(space, predicted, true) -> np.ndarray:
    """Symmetry-aware error per patch: ΔD (Å) for slip, |Δθ| (degrees) for twist."""
    from stackview.core.labels import TwistLabels

    if isinstance(space, TwistLabels):
        return space.distance(np.asarray(predicted).ravel(), np.asarray(true).ravel())
    err, _ = space.residual(predicted, true)
    return np.sqrt((err ** 2).sum(axis=(-1, -2)))


def accuracy_rows(metrics: dict) -> list[tuple[str, str]]:
    """The accuracy table: (quantity, value with unit) rows."""
    rows = []
    if "mean_A" in metrics:
        rows += [("ΔD mean", f"{metrics['mean_A']:.4f} Å"),
                 ("ΔD median", f"{metrics['median_A']:.4f} Å"),
                 ("ΔD 95th percentile", f"{metrics['p95_A']:.4f} Å"),
                 ("fraction ΔD < 0.1 Å", f"{metrics.get('fraction_below_0.1_A', 0):.1%}"),
                 ("fraction ΔD < 0.2 Å", f"{metrics.get('fraction_below_0.2_A', 0):.1%}")]
        for name, v in metrics.get("per_axis", {}).items():
            rows.append((f"{name} mean |error|", f"{v['mean_abs_A']:.4f} Å"))
    elif "mean_deg" in metrics:
        rows += [("Δθ mean", f"{metrics['mean_deg']:.3f}°"),
                 ("Δθ median", f"{metrics['median_deg']:.3f}°"),
                 ("Δθ 95th percentile", f"{metrics['p95_deg']:.3f}°"),
                 ("θ / 60°−θ confusions",
                  f"{metrics['confusions']}/{metrics['confusion_candidates']}")]
    rows.append(("test patches", str(metrics.get("n", ""))))
    return rows


# --------------------------------------------------------------------------- finish
def install(project: Project) -> Path:
    """Copy the bundle into the user's model library (replacing this project's earlier one)."""
    from stackview.models.bundle import install_model
    from stackview.models.registry import user_models_dir

    stem = bundle_stem(project)
    target = user_models_dir() / stem.name
    ours = project["finish"]["installed"] == str(target)
    if Path(str(target) + ".json").exists() and not ours:
        raise UsageError(f"a model called {stem.name!r} is already in your library; "
                         "choose another name")
    return install_model(stem, overwrite=True)

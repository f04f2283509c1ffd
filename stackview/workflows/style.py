"""``stackview style select|train|translate|evaluate`` as functions: their jobs, command lines
and run functions (the CLI and the wizard call the same ones, so a wizard step moved to a
cluster gives the same selection and the same style card).

Lengths are in nm in the jobs, as on the command line (``*_sampling_nm`` in nm/px), and in Å
for the library below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from stackview.engine.jobs import null_progress
from stackview.errors import UsageError
from stackview.workflows.commandline import words

log = logging.getLogger(__name__)

FEATURES = ("auto", "vgg16", "spectral")
CONFIGS = ("cpu", "paper", "tiny")
FORMATS = ("png", "tif", "npy")


def _paths(values) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def _samplings(value) -> tuple[float, ...] | None:
    """One pixel size for all images or one per image (nm/px), as a tuple."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


def _positive(name: str, value) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{name} must be positive")


def nm_to_A(value):
    """nm → Å for a value, None, or a list of values (per-image pixel sizes)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [10.0 * v for v in value] if len(value) > 1 else 10.0 * value[0]
    return 10.0 * value


def per_file(files, value) -> list:
    """One pixel size (or None) per file from one value for all or a list of one per file."""
    if not isinstance(value, (list, tuple)):
        return [value] * len(files)
    if len(value) == 1:
        return list(value) * len(files)
    if len(value) != len(files):
        raise UsageError(f"give one pixel size for all images or one per image: {len(value)} "
                         f"sizes for {len(files)} images")
    return list(value)


def load_set(paths, own_nm, target_A, clip_percentile=0.0):
    """Load images (files and folders) at ``target_A``; returns (names, images, sampling)."""
    from stackview.style.images import list_images, load_normalised

    files = list_images(paths)
    images, sampling = [], None
    for f, nm in zip(files, per_file(files, own_nm), strict=True):
        img, sampling = load_normalised(
            f, sampling_A=nm_to_A(nm), target_A=target_A, clip_percentile=clip_percentile
        )
        images.append(img)
    return [str(f) for f in files], images, sampling


def file_sampling_A(paths, own_nm) -> float | None:
    """The sampling (Å/px) of the first image: the given one, else the file's."""
    from stackview.style.images import list_images, read_grey

    if own_nm is not None:
        return nm_to_A(per_file(list_images(paths), own_nm)[0])
    return read_grey(list_images(paths)[0])[1]


def _sampling_words(flag: str, value) -> list[str]:
    if value is None:
        return []
    return words(flag, *value) if isinstance(value, tuple) else words(flag, value)


# --------------------------------------------------------------------------- select
@dataclass(frozen=True)
class StyleSelectJob:
    """Trident selection: the simulations closest to the experimental images (t-SNE of image
    features, k-means with K = 2); ``keep`` at most that many (a fraction below 1), at least
    ``min_keep``."""

    simulations: tuple[str, ...]
    experimental: tuple[str, ...]
    out: str
    sim_sampling_nm: float | None = None
    exp_sampling_nm: tuple[float, ...] | None = None
    features: str = "auto"
    perplexity: float = 12.0
    keep: float | None = None
    min_keep: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "simulations", _paths(self.simulations))
        object.__setattr__(self, "experimental", _paths(self.experimental))
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "sim_sampling_nm", _optional_float(self.sim_sampling_nm))
        object.__setattr__(self, "exp_sampling_nm", _samplings(self.exp_sampling_nm))
        object.__setattr__(self, "perplexity", float(self.perplexity))
        object.__setattr__(self, "keep", _optional_float(self.keep))
        if self.features not in FEATURES:
            raise UsageError(f"the features must be one of {', '.join(FEATURES)}")


def style_select_argv(job: StyleSelectJob) -> list[str]:
    argv = ["style", "select", "--simulations", *job.simulations,
            "--experimental", *job.experimental]
    argv += _sampling_words("--sim-sampling-nm", job.sim_sampling_nm)
    argv += _sampling_words("--exp-sampling-nm", job.exp_sampling_nm)
    if job.features != "auto":
        argv += ["--features", job.features]
    if job.perplexity != 12.0:
        argv += words("--perplexity", job.perplexity)
    if job.keep is not None:
        argv += words("--keep", job.keep)
    if job.min_keep != 1:
        argv += words("--min-keep", job.min_keep)
    if job.seed:
        argv += words("--seed", job.seed)
    return argv + ["--out", job.out]


def select_style_simulations(job: StyleSelectJob, progress=null_progress, cancel=None):
    """Read the images, select, write ``selection.json`` and ``selection.png`` in ``out``;
    returns the :class:`~stackview.style.selection.SelectionResult`."""
    from stackview.style.images import list_images
    from stackview.style.selection import select_files

    exp_files = list_images(job.experimental)
    return select_files(
        list_images(job.simulations), exp_files, job.out,
        simulation_sampling_A=nm_to_A(job.sim_sampling_nm),
        experimental_sampling_A=(None if job.exp_sampling_nm is None else
                                 [nm_to_A(v) for v in per_file(exp_files, job.exp_sampling_nm)]),
        features=job.features, perplexity=job.perplexity, keep=job.keep,
        min_keep=job.min_keep, seed=job.seed, progress=progress, cancel=cancel)


# --------------------------------------------------------------------------- train
@dataclass(frozen=True)
class StyleTrainJob:
    """DRIT training on noise-free simulations (``simulations``, or those a ``selection``
    chose) and experimental images; ``None`` sizes are the preset's (``config``)."""

    experimental: tuple[str, ...]
    out: str
    simulations: tuple[str, ...] = ()
    selection: str | None = None
    sim_sampling_nm: float | None = None
    exp_sampling_nm: tuple[float, ...] | None = None
    sampling_nm: float | None = None
    config: str = "cpu"
    iterations: int | None = None
    image_px: int | None = None
    width: int | None = None
    batch_size: int | None = None
    content_consistency: bool = True
    consistency_weight: float | None = None
    structure_weight: float | None = None
    clip_percentile: float = 0.0
    material: str | None = None
    microscope: str | None = None
    seed: int = 0
    checkpoint_every: int = 500
    preview_every: int = 250
    log_every: int = 50
    threads: int = 1  # torch CPU threads; 0: torch's default
    device: str = "auto"
    resume: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "experimental", _paths(self.experimental))
        object.__setattr__(self, "simulations", _paths(self.simulations))
        object.__setattr__(self, "out", str(self.out))
        for name in ("selection", "init_from"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))
        for name in ("sim_sampling_nm", "sampling_nm", "consistency_weight",
                     "structure_weight"):
            object.__setattr__(self, name, _optional_float(getattr(self, name)))
        object.__setattr__(self, "exp_sampling_nm", _samplings(self.exp_sampling_nm))
        object.__setattr__(self, "clip_percentile", float(self.clip_percentile))
        if bool(self.simulations) == bool(self.selection):
            raise UsageError("give the simulations or a selection (one of the two)")
        if self.config not in CONFIGS:
            raise UsageError(f"the configuration must be one of {', '.join(CONFIGS)}")
        if self.log_every < 1:
            raise UsageError("--log-every must be at least 1")


def style_train_argv(job: StyleTrainJob) -> list[str]:
    argv = ["style", "train"]
    argv += (["--selection", job.selection] if job.selection
             else ["--simulations", *job.simulations])
    argv += ["--experimental", *job.experimental]
    argv += _sampling_words("--sim-sampling-nm", job.sim_sampling_nm)
    argv += _sampling_words("--exp-sampling-nm", job.exp_sampling_nm)
    argv += _sampling_words("--sampling-nm", job.sampling_nm)
    argv += ["--config", job.config]
    for flag, name in (("--iterations", "iterations"), ("--image-px", "image_px"),
                       ("--width", "width"), ("--batch-size", "batch_size"),
                       ("--consistency-weight", "consistency_weight"),
                       ("--structure-weight", "structure_weight")):
        if getattr(job, name) is not None:
            argv += words(flag, getattr(job, name))
    if not job.content_consistency:
        argv.append("--no-content-consistency")
    if job.clip_percentile:
        argv += words("--clip-percentile", job.clip_percentile)
    if job.material:
        argv += ["--material", job.material]
    if job.microscope:
        argv += ["--microscope", job.microscope]
    defaults = {"seed": 0, "checkpoint_every": 500, "preview_every": 250, "log_every": 50,
                "threads": 1}
    for name, default in defaults.items():
        if getattr(job, name) != default:
            argv += words("--" + name.replace("_", "-"), getattr(job, name))
    if job.device != "auto":
        argv += ["--device", job.device]
    if job.init_from:
        argv += ["--init-from", job.init_from]
    argv += ["--out", job.out]
    return argv + (["--resume"] if job.resume else [])


def style_card(job: StyleTrainJob, command: str | None, simulations, experimental,
               selection: dict | None, threads: int) -> dict:
    """The fields of a style bundle's card that the training job adds."""
    return {
        "material": job.material,
        "microscope": {"description": job.microscope} if job.microscope else None,
        "selection": selection,
        "training": {
            "command": command,
            "config": job.config,
            "simulations": [Path(n).name for n in simulations],
            "experimental": [Path(n).name for n in experimental],
            "torch_threads": threads,
        },
    }


def train_style_model(job: StyleTrainJob, command: str | None = None, progress=null_progress,
                      cancel=None) -> Path:
    """Train the style model and write its bundle (``command`` recorded in its card); returns
    the bundle's weight file. On cancel a checkpoint is kept (continue with ``resume``)."""
    import torch

    from stackview.style.config import get_preset
    from stackview.style.selection import load_selection
    from stackview.style.trainer import train_style

    if job.threads:
        torch.set_num_threads(job.threads)
    sim_paths = list(job.simulations)
    selection_info = None
    if job.selection:
        sel = load_selection(job.selection)
        sim_paths = sel["chosen"]
        if not sim_paths:
            raise UsageError(f"{job.selection} chose no simulations")
        selection_info = {
            "file": job.selection,
            "feature_kind": sel["feature_kind"],
            "n_chosen": len(sim_paths),
            "n_candidates": len(sel["simulations"]),
        }
    exp_A = file_sampling_A(job.experimental, job.exp_sampling_nm)
    sim_A = file_sampling_A(sim_paths, job.sim_sampling_nm)
    model_A = nm_to_A(job.sampling_nm) or exp_A or sim_A
    if model_A is not None and (exp_A is None or sim_A is None):
        raise UsageError(
            "give the pixel size of the images without calibration "
            "(--sim-sampling-nm / --exp-sampling-nm)"
        )
    if model_A is None:
        log.warning(
            "no pixel sizes known: images are used as they are and the model records no sampling"
        )
    changes = {"sampling_A": model_A}
    for key in ("iterations", "image_px", "width", "batch_size"):
        if getattr(job, key):
            changes[key] = getattr(job, key)
    if not job.content_consistency:
        changes["content_consistency"] = False
    if job.consistency_weight is not None:
        changes["lambda_consistency"] = job.consistency_weight
    if job.structure_weight is not None:
        changes["lambda_structure"] = job.structure_weight
    cfg = get_preset(job.config).replace(**changes)
    sim_names, sims, _ = load_set(sim_paths, job.sim_sampling_nm, model_A)
    exp_names, exps, _ = load_set(job.experimental, job.exp_sampling_nm, model_A,
                                  job.clip_percentile)
    card = style_card(job, command, sim_names, exp_names, selection_info,
                      torch.get_num_threads())
    return train_style(
        cfg, sims, exps, job.out, seed=job.seed, resume=job.resume, device=job.device,
        checkpoint_every=max(1, job.checkpoint_every), preview_every=job.preview_every,
        log_every=job.log_every, card=card, init_from=job.init_from, progress=progress,
        cancel=cancel)


# --------------------------------------------------------------------------- translate
@dataclass(frozen=True)
class StyleTranslateJob:
    """Simulations rendered in a trained style: the training images' mean style, a random one
    (``seed``; ``diverse``: one per image) or an explicit ``attribute`` code."""

    inputs: tuple[str, ...]
    bundle: str
    out: str
    seed: int | None = None
    attribute: tuple[float, ...] | None = None
    diverse: bool = False
    input_sampling_nm: float | None = None
    tile_px: int = 1024
    overlap_px: int | None = None
    format: str = "png"
    device: str = "auto"
    bf16: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", _paths(self.inputs))
        object.__setattr__(self, "bundle", str(self.bundle))
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "input_sampling_nm", _optional_float(self.input_sampling_nm))
        if isinstance(self.attribute, str):
            object.__setattr__(self, "attribute", parse_attribute(self.attribute))
        elif self.attribute is not None:
            object.__setattr__(self, "attribute", tuple(float(v) for v in self.attribute))
        if self.seed is not None and self.attribute is not None:
            raise UsageError("give a style seed or an attribute code, not both")
        if self.format not in FORMATS:
            raise UsageError(f"the format must be one of {', '.join(FORMATS)}")


def parse_attribute(text: str) -> tuple[float, ...]:
    """``--attribute Z1,Z2,...`` as numbers."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError("--attribute must be comma-separated numbers") from None


def style_translate_argv(job: StyleTranslateJob) -> list[str]:
    argv = ["style", "translate", *job.inputs, "--bundle", job.bundle, "--out", job.out]
    if job.seed is not None:
        argv += words("--seed", job.seed)
    if job.attribute is not None:
        argv += ["--attribute", ",".join(repr(v) for v in job.attribute)]
    if job.diverse:
        argv.append("--diverse")
    argv += _sampling_words("--input-sampling-nm", job.input_sampling_nm)
    if job.tile_px != 1024:
        argv += words("--tile-px", job.tile_px)
    if job.overlap_px is not None:
        argv += words("--overlap-px", job.overlap_px)
    if job.format != "png":
        argv += ["--format", job.format]
    if job.device != "auto":
        argv += ["--device", job.device]
    return argv + (["--bf16"] if job.bf16 else [])


def translate_style(job: StyleTranslateJob, progress=null_progress, cancel=None) -> list[Path]:
    """Translate the inputs into ``out``; returns the files written."""
    from stackview.style.images import list_images
    from stackview.style.translate import StyleTranslator, translate_files

    translator = StyleTranslator.from_bundle(job.bundle, bf16=job.bf16, device=job.device)
    kwargs = {"code": list(job.attribute)} if job.attribute is not None else {}
    return translate_files(
        translator, list_images(job.inputs), job.out, suffix="." + job.format, seed=job.seed,
        diverse=job.diverse, input_sampling_A=nm_to_A(job.input_sampling_nm),
        tile_px=job.tile_px, overlap_px=job.overlap_px, progress=progress, **kwargs)


# --------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class StyleEvaluateJob:
    """The paper's Fig. 2 comparison of noise-free, noise-added and DRIT images (one row per
    ``bundles`` entry) with experimental images."""

    simulations: tuple[str, ...]
    experimental: tuple[str, ...]
    bundles: tuple[str, ...] = ()
    sim_sampling_nm: float | None = None
    exp_sampling_nm: tuple[float, ...] | None = None
    sampling_nm: float | None = None
    min_distance_nm: float | None = None
    seed: int = 0
    out: str | None = None
    update_card: bool = False

    def __post_init__(self) -> None:
        for name in ("simulations", "experimental", "bundles"):
            object.__setattr__(self, name, _paths(getattr(self, name)))
        if self.out is not None:
            object.__setattr__(self, "out", str(self.out))
        for name in ("sim_sampling_nm", "sampling_nm", "min_distance_nm"):
            object.__setattr__(self, name, _optional_float(getattr(self, name)))
            _positive(name, getattr(self, name))
        object.__setattr__(self, "exp_sampling_nm", _samplings(self.exp_sampling_nm))


def style_evaluate_argv(job: StyleEvaluateJob) -> list[str]:
    argv = ["style", "evaluate"]
    for bundle in job.bundles:
        argv += ["--bundle", bundle]
    argv += ["--simulations", *job.simulations, "--experimental", *job.experimental]
    argv += _sampling_words("--sim-sampling-nm", job.sim_sampling_nm)
    argv += _sampling_words("--exp-sampling-nm", job.exp_sampling_nm)
    argv += _sampling_words("--sampling-nm", job.sampling_nm)
    argv += _sampling_words("--min-distance-nm", job.min_distance_nm)
    if job.seed:
        argv += words("--seed", job.seed)
    if job.out:
        argv += ["--out", job.out]
    return argv + (["--update-card"] if job.update_card else [])


def evaluate_style_models(job: StyleEvaluateJob, progress=null_progress, cancel=None):
    """Compare; write ``evaluation.json`` and ``evaluation.png`` in ``out`` (when given) and
    store the DRIT rows in the bundles' cards (``update_card``); returns the
    :class:`~stackview.style.evaluate.StyleEvaluation`."""
    from stackview.style.bundle import update_card
    from stackview.style.evaluate import evaluate_style
    from stackview.style.translate import StyleTranslator

    translators = {}
    for path in job.bundles:
        tr = StyleTranslator.from_bundle(path)
        label = f"DRIT {tr.card.get('name', Path(path).stem)}"
        if not tr.model.cfg.content_consistency:
            label += " (no Eq.1)"
        if label in translators:  # two bundles of the same name: tell them apart by path
            label += f" [{Path(path).parent.name}/{Path(path).name}]"
        translators[label] = tr
    first = next(iter(translators.values()), None)
    target_A = nm_to_A(job.sampling_nm) or (first.sampling_A if first else None)
    if target_A is None:
        target_A = file_sampling_A(job.experimental, job.exp_sampling_nm)
    _, sims, _ = load_set(job.simulations, job.sim_sampling_nm, target_A)
    _, exps, _ = load_set(job.experimental, job.exp_sampling_nm, target_A)
    ev = evaluate_style(
        sims, exps, translators, sampling_A=target_A,
        min_distance_px=(10 * job.min_distance_nm / target_A
                         if job.min_distance_nm and target_A else None),
        seed=job.seed, progress=progress)
    if job.out:
        out = Path(job.out)
        ev.save_json(out / "evaluation.json")
        ev.figure(out / "evaluation.png")
    if job.update_card:
        for label, path in zip(translators, job.bundles, strict=True):
            update_card(path, metrics={"evaluation": {
                "drit": ev.rows[label], "noise_free": ev.rows["noise-free"],
                "gaussian": ev.rows["gaussian"], "physics": ev.rows["physics"],
                "n_simulations": len(sims), "n_experimental": len(exps)}})
    return ev

"""``stackview analyze`` as functions: an :class:`AnalyzeJob`, its command line, one image
(:func:`analyze_one`, what the window runs) and a set of images and folders written to disk
(:func:`analyze_images`, what the CLI runs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stackview.engine.jobs import null_progress
from stackview.errors import UsageError
from stackview.workflows.commandline import words

FIGURE_FORMATS = ("png", "svg")
#: how the windows are read (:func:`stackview.inference.dense.resolve_mode`)
MODES = ("auto", "window", "dense")
MAX_VIEWS = 8
MAX_STRIDE_NM = 50.0


@dataclass(frozen=True)
class AnalyzeJob:
    """Images to map and how (the options of ``stackview analyze``; lengths in nm).

    ``model``: a bundle name or path (None: the material's model for each image's field, or for
    ``window_nm``); ``pixel_size_nm``: overrides the files' calibration; ``roi_nm``: (x0, y0,
    x1, y1) from the top-left corner; ``pel``: "auto" (the material's landscape) or a CSV, for a
    PEL panel in the figure; ``out``: the results folder (None: nothing is written, as in the
    window)."""

    inputs: tuple[str, ...] = ()
    out: str | None = None
    model: str | None = None
    material: str | None = None
    task: str | None = None
    pixel_size_nm: float | None = None
    window_nm: float | None = None
    stride_nm: float = 0.5
    refine: bool = False
    fine_stride_nm: float = 0.1
    roi_nm: tuple[float, float, float, float] | None = None
    n_views: int = 1
    undistort: bool = True
    device: str = "auto"
    fit: bool = False
    pel: str | None = None
    figure_format: str = "png"
    mode: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(str(p) for p in self.inputs))
        for name in ("out", "model", "pel"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))
        for name in ("pixel_size_nm", "window_nm"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
        object.__setattr__(self, "stride_nm", float(self.stride_nm))
        object.__setattr__(self, "fine_stride_nm", float(self.fine_stride_nm))
        if self.roi_nm is not None:
            roi = tuple(float(v) for v in self.roi_nm)
            if len(roi) != 4:
                raise UsageError("the ROI is four numbers: x0 y0 x1 y1 in nm")
            object.__setattr__(self, "roi_nm", roi)
        if not 1 <= self.n_views <= MAX_VIEWS:
            raise UsageError(f"--views must be between 1 and {MAX_VIEWS}")
        if not 0 < self.stride_nm <= MAX_STRIDE_NM:
            raise UsageError(f"the stride {self.stride_nm:g} nm must be between 0 and "
                             f"{MAX_STRIDE_NM:g} nm")
        if self.task not in (None, "slip", "twist"):
            raise UsageError(f"the task must be 'slip' or 'twist', not {self.task!r}")
        if self.mode not in MODES:
            raise UsageError(f"the mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.figure_format not in FIGURE_FORMATS:
            raise UsageError(f"the figure format must be one of {', '.join(FIGURE_FORMATS)}")

    @classmethod
    def from_settings(cls, settings, inputs=(), **changes) -> AnalyzeJob:
        """The job of an object with the job's fields (e.g. the session's
        ``AnalysisSettings``) for ``inputs``; ``changes`` override fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
                  if f.name in names} if dataclasses.is_dataclass(settings) else dict(settings)
        return cls(**{**values, "inputs": tuple(inputs), **changes})


def analyze_argv(job: AnalyzeJob) -> list[str]:
    """The ``analyze`` arguments that run ``job`` (options that differ from the defaults)."""
    if not job.inputs:
        raise UsageError("an analysis command needs at least one image or folder")
    if job.out is None:
        raise UsageError("an analysis command needs an output folder (--out)")
    default = AnalyzeJob()
    argv = ["analyze", *job.inputs, "--out", job.out]
    for flag, name in (("--model", "model"), ("--material", "material"), ("--task", "task"),
                       ("--pixel-size", "pixel_size_nm"), ("--window", "window_nm")):
        value = getattr(job, name)
        if value is not None:
            argv += words(flag, value)
    if job.stride_nm != default.stride_nm:
        argv += words("--stride", job.stride_nm)
    if job.refine:
        argv.append("--refine")
    if job.fine_stride_nm != default.fine_stride_nm:
        argv += words("--fine-stride", job.fine_stride_nm)
    if job.roi_nm is not None:
        argv += words("--roi", *job.roi_nm)
    if job.n_views != default.n_views:
        argv += words("--views", job.n_views)
    if job.mode != default.mode:
        argv += ["--mode", job.mode]
    if not job.undistort:
        argv.append("--no-undistort")
    if job.device != default.device:
        argv += ["--device", job.device]
    if job.fit:
        argv.append("--fit")
    if job.pel is not None:
        argv += ["--pel"] if job.pel == "auto" else ["--pel", job.pel]
    if job.figure_format != default.figure_format:
        argv += ["--figure-format", job.figure_format]
    return argv


def expand_inputs(inputs) -> list[Path]:
    """Image files, and the supported images directly in folders (sorted)."""
    from stackview.io.readers import SUFFIXES

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES and f.is_file())
            if not found:
                raise UsageError(f"the folder {p} contains no supported image files")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise UsageError(f"the file {p} does not exist")
    return files


def analyze_one(job: AnalyzeJob, image, bundle=None, progress=null_progress, cancel=None,
                device=None):
    """One image (a path or a 2-D array) analysed with the job's settings; returns the
    :class:`~stackview.analysis.analyze.AnalysisResult` (nothing is written).

    ``bundle``: an already loaded model (default: ``job.model``, else the material's model for
    the image's field or ``job.window_nm``); ``device``: a resolved torch device (default:
    ``job.device`` resolved)."""
    from stackview.analysis.analyze import analyze_image
    from stackview.engine.devices import resolve_device

    return analyze_image(
        image, model=None if bundle is not None else job.model, bundle=bundle,
        material=job.material, task=job.task, pixel_size_nm=job.pixel_size_nm,
        window_nm=job.window_nm,
        stride_nm=job.stride_nm, refine=job.refine, fine_stride_nm=job.fine_stride_nm,
        roi_nm=job.roi_nm, n_views=job.n_views, undistort=job.undistort,
        device=device if device is not None else resolve_device(job.device), fit=job.fit,
        progress=progress, cancel=cancel, mode=job.mode)


@dataclass
class AnalyzeOutcome:
    """What :func:`analyze_images` wrote: each image's folder, ``stats.csv``'s rows (and the
    file, for more than one image), the images skipped (name, one sentence) and the batch
    statistics."""

    folders: dict[str, Path] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    stats: Path | None = None
    batch: object | None = None


def analyze_images(job: AnalyzeJob, progress_for: Callable | None = None, cancel=None,
                   on_result: Callable | None = None, on_skip: Callable | None = None
                   ) -> AnalyzeOutcome:
    """Analyse every image of ``job.inputs`` and write ``out/<stem>/`` for each (map.csv,
    map_*.tif, the figure, summary.json; a PEL panel with ``job.pel``) and ``out/stats.csv``
    for more than one image.

    ``progress_for(path)`` gives each image's progress callback; ``on_result(path, result,
    folder, row)`` is called as each image is written (the result is not kept; ``row`` is its
    ``stats.csv`` row), ``on_skip(path,
    message)`` for an image that cannot be analysed (skipped when there are several; a single
    image raises)."""
    from stackview.analysis.analyze import resolve_bundle, write_results
    from stackview.analysis.batch import batch_statistics, stats_row
    from stackview.analysis.export import write_stats_csv
    from stackview.engine.devices import resolve_device

    if job.out is None:
        raise UsageError("give the output folder (--out)")
    device = resolve_device(job.device)
    files = expand_inputs(job.inputs)
    # a named model is loaded once; otherwise each image gets the material's model for its
    # field (or for the window), loaded once per model
    bundle = resolve_bundle(job.model, job.material, job.task, window_nm=job.window_nm)
    landscapes: dict[str, object] = {}
    if job.pel:  # checked up front: a bilayer slip model
        from stackview.pel.figure import landscape_for_bundle

        landscapes[(bundle.card.name, None)] = landscape_for_bundle(job.pel, bundle)
    if not job.model:
        bundle = None
    out = Path(job.out)
    outcome = AnalyzeOutcome()
    for path in files:
        try:
            result = analyze_one(job, path, bundle=bundle, device=device, cancel=cancel,
                                 progress=progress_for(path) if progress_for else null_progress)
        except UsageError as exc:
            if len(files) == 1:
                raise
            outcome.failures.append((path.name, str(exc)))
            if on_skip is not None:
                on_skip(path, str(exc))
            continue
        folder = write_results(result, out, figure_format=job.figure_format)
        if job.pel:
            from stackview.pel.figure import (
                add_pel_to_figure,
                landscape_for_bundle,
                result_family,
            )

            # a model of both stacking families: the landscape of the image's majority family
            family = result_family(result)
            name = (result.bundle.card.name, family)
            if name not in landscapes:
                landscapes[name] = landscape_for_bundle(job.pel, result.bundle, family)
            add_pel_to_figure(result, folder, landscapes[name], figure_format=job.figure_format)
        row = stats_row(result)
        outcome.folders[str(path)] = folder
        outcome.rows.append(row)
        if on_result is not None:
            on_result(path, result, folder, row)
    if len(files) > 1 and outcome.rows:
        outcome.stats = write_stats_csv(out / "stats.csv", outcome.rows)
        outcome.batch = batch_statistics(outcome.rows)
    return outcome

"""``stackview dataset make`` as a function: a :class:`DatasetJob` and its command line."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from stackview.datasets.spec import DatasetSpec
from stackview.engine.jobs import null_progress
from stackview.errors import UsageError
from stackview.workflows.commandline import words

#: spec fields ``dataset make`` does not set (the library's defaults are what it gives)
_FIXED = ("jitter_z_A", "jitter_xy_A", "mask_max_fraction", "contamination_max")


@dataclass(frozen=True)
class DatasetJob:
    """A dataset to simulate: the :class:`DatasetSpec` and how the run goes."""

    spec: DatasetSpec
    out: str
    scheduler: str = "threads"
    workers: int | None = None
    resume: bool = False
    overwrite: bool = False


def dataset_argv(job: DatasetJob) -> list[str]:
    """The ``dataset make`` arguments that make ``job`` (every spec field it can set)."""
    s = job.spec
    default = DatasetSpec(task=s.task, material=s.material, layers=s.layers)
    for name in _FIXED:
        if getattr(s, name) != getattr(default, name):
            raise UsageError(f"the command line cannot set {name}; keep its default")
    argv = ["dataset", "make", str(job.out), *words(
        "--task", s.task, "--material", s.material, "--layers", s.layers,
        "--family", s.family, "--count", s.count,
        "--positions", s.positions, "--theta-range", *s.theta_range_deg,
        "--sampling", s.sampling_A, "--patch-px", s.patch_px, "--optics", s.optics,
        "--defocus", *s.defocus_A, "--source-size", *s.source_size_A,
        "--orientation", s.orientation, "--vacancies", *s.vacancy_range,
        "--holes", s.hole_probability, "--hole-max", s.hole_max_fraction,
        "--masks", s.mask_probability, "--contamination", s.contamination_probability,
        "--noise-probability", s.noise_probability, "--style", s.style,
        "--seed", s.seed, "--chunk", s.chunk)]
    if s.mode == "grid":
        argv += words("--grid-step", s.step_A) if s.task == "slip" else words(
            "--theta-step", s.theta_step_deg)
    elif (s.step_A, s.theta_step_deg) != (default.step_A, default.theta_step_deg):
        raise UsageError("a grid step belongs to grid labels only")
    if s.psnr_range_dB:
        argv += words("--psnr", *s.psnr_range_dB)
    if s.style_bundle:
        argv += ["--style-bundle", s.style_bundle]
    if s.style_diverse:
        argv.append("--style-diverse")
    if s.physics:
        argv += ["--physics", *(f"{k}={_range(v)}" for k, v in sorted(s.physics.items()))]
    if job.scheduler != "threads":
        argv += ["--scheduler", job.scheduler]
    if job.workers is not None:
        argv += words("--workers", job.workers)
    argv += (["--resume"] if job.resume else []) + (["--overwrite"] if job.overwrite else [])
    return argv


def _range(value) -> str:
    if isinstance(value, (list, tuple)):
        return ":".join(repr(float(v)) for v in value)
    return repr(float(value))


def make_dataset(job: DatasetJob, command: str | None = None, progress=null_progress,
                 cancel=None) -> Path:
    """Simulate the dataset (resuming or overwriting as the job says); returns its path.
    ``command`` is recorded in the dataset's provenance."""
    from stackview.datasets.generate import generate_dataset

    return generate_dataset(job.spec, job.out, scheduler=job.scheduler, workers=job.workers,
                            resume=job.resume, overwrite=job.overwrite, command=command,
                            progress=progress, cancel=cancel)


def continue_or_start(job: DatasetJob) -> DatasetJob:
    """The job resumed when an interrupted run left its partial store, else started afresh
    (replacing a finished one): what the wizard does on every run."""
    out = Path(os.fspath(job.out))
    partial = out.with_name(f".{out.name}.partial").exists()
    return dataclasses.replace(job, resume=partial, overwrite=not partial)

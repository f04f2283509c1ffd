"""``stackview pel`` as a function: a :class:`PelJob`, its command line and :func:`make_landscape`
(compute, import or reuse a landscape; cache it; write its CSV and figure)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from stackview.engine.jobs import null_progress
from stackview.errors import UsageError
from stackview.workflows.commandline import command_text, words

FAMILIES = ("parallel", "antiparallel")
RELAX = ("z", "none")
CALCULATORS = ("chgnet+d3", "chgnet")


@dataclass(frozen=True)
class PelJob:
    """An interlayer energy landscape to compute (or import), and what is written of it.

    ``interlayer_A``: the starting (rigid: fixed) interlayer distance, default the material's;
    ``import_csv``: a user's grid instead of a computation; ``cache``: store the result as the
    user's landscape of the material; ``out``/``figure``: also write the grid / a heat map
    (``slips``: an analysis' ``map.csv`` scattered on it)."""

    material: str
    family: str = "parallel"
    grid: int = 12
    relax: str = "z"
    calculator: str = "chgnet+d3"
    interlayer_A: float | None = None
    workers: int = 1
    threads: int = 1
    import_csv: str | None = None
    recompute: bool = False
    cache: bool = True
    out: str | None = None
    figure: str | None = None
    slips: str | None = None

    def __post_init__(self) -> None:
        for name in ("import_csv", "out", "figure", "slips"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))
        if self.interlayer_A is not None:
            object.__setattr__(self, "interlayer_A", float(self.interlayer_A))
        for name, value, allowed in (("family", self.family, FAMILIES),
                                     ("relax", self.relax, RELAX),
                                     ("calculator", self.calculator, CALCULATORS)):
            if value not in allowed:
                raise UsageError(f"the {name} must be one of {', '.join(allowed)}")
        if self.slips and not self.figure:
            raise UsageError("--slips needs --figure (the slips are drawn on the heat map)")


def pel_argv(job: PelJob) -> list[str]:
    """The ``pel`` arguments that run ``job`` (the settings that make the landscape always,
    the rest when they are not the defaults)."""
    argv = ["pel", "--material", job.material]
    if job.family != "parallel":
        argv += ["--family", job.family]
    argv += words("--grid", job.grid, "--relax", job.relax, "--calculator", job.calculator)
    if job.interlayer_A is not None:
        argv += words("--interlayer", job.interlayer_A)
    if job.workers != 1:
        argv += words("--workers", job.workers)
    if job.threads != 1:
        argv += words("--threads", job.threads)
    if job.import_csv:
        argv += ["--import", job.import_csv]
    if job.recompute:
        argv.append("--recompute")
    if not job.cache:
        argv.append("--no-cache")
    for flag, value in (("--out", job.out), ("--figure", job.figure), ("--slips", job.slips)):
        if value:
            argv += [flag, value]
    return argv


@dataclass
class PelOutcome:
    """What :func:`make_landscape` did: the landscape, how it was got (``action``: "computed
    in …", "imported …" or "reused …"), the files written and notes for the user."""

    landscape: object
    action: str
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _matches(prov: dict, job: PelJob) -> bool:
    """A cached landscape was computed with the job's settings."""
    return (prov.get("source") == "computed" and prov.get("grid") == [job.grid, job.grid]
            and (prov.get("family") or "parallel") == job.family
            and prov.get("relax") == job.relax
            and (prov.get("calculator") or {}).get("name") == job.calculator
            and (job.interlayer_A is None
                 or (prov.get("relaxation") or {}).get("interlayer_start_A") == job.interlayer_A))


def make_landscape(job: PelJob, command: str | None = None, progress=null_progress,
                   cancel=None) -> PelOutcome:
    """Import, reuse (a cached or shipped landscape with the same settings, unless
    ``recompute``) or compute the landscape; cache it and write what the job asks for.
    ``command`` (default: the job's command line) is recorded in a computed landscape."""
    from stackview.core.stacking import check_family
    from stackview.materials import get_material
    from stackview.pel import compute, files

    material = get_material(job.material)
    check_family(material, job.family)
    notes: list[str] = []
    if job.import_csv:
        landscape = files.import_csv(job.import_csv, material, job.family)
        action = f"imported {job.import_csv}"
    else:
        landscape = None
        if not job.recompute:
            for path in (files.user_path(material, job.family),
                         files.shipped_path(material, job.family)):
                if path.exists():
                    cached = files.read_landscape(path, material, job.family)
                    if _matches(cached.provenance, job):
                        landscape, action = cached, f"reused {path} (use --recompute to redo)"
                        break
        if landscape is None:
            from stackview.pel.landscape import PelSettings

            settings = PelSettings(grid=job.grid, relax=job.relax, interlayer_A=job.interlayer_A,
                                   family=job.family)
            landscape = compute.compute_landscape(
                material, settings, calculator=job.calculator, workers=job.workers,
                threads=job.threads, progress=progress, cancel=cancel,
                command=command or command_text(pel_argv(job)))
            action = f"computed in {landscape.provenance['seconds']:.1f} s"
    written: list[Path] = []
    if job.cache and not action.startswith("reused"):
        previous = files.user_path(material, job.family)
        if previous.exists() and not job.import_csv:
            with contextlib.suppress(UsageError):
                if files.read_landscape(previous, material).provenance.get("source") == "imported":
                    notes.append(f"your imported landscape of {material.name} in {previous} is "
                                 "replaced by the computed one")
        written.append(Path(files.cache_landscape(landscape)))
    if job.out:
        written.append(Path(files.write_landscape(landscape, job.out)[0]))
    if job.figure:
        from stackview.pel.plot import read_slips_csv, write_landscape_figure

        slips = read_slips_csv(job.slips) if job.slips else None
        written.append(Path(write_landscape_figure(job.figure, landscape, slips)))
    return PelOutcome(landscape, action, written, notes)

"""``stackview evaluate`` as a function: an :class:`EvaluateJob` and its command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackview.engine.jobs import null_progress
from stackview.workflows.commandline import words


@dataclass(frozen=True)
class EvaluateJob:
    """A bundle measured on a labelled dataset; ``out`` gets the report, ``update_card`` names
    the card entry the metrics go to."""

    bundle: str
    dataset: str
    out: str | None = None
    tta: bool = False
    max_samples: int | None = None
    update_card: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("bundle", "dataset", "out"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))


def evaluate_argv(job: EvaluateJob) -> list[str]:
    argv = ["evaluate", job.bundle, "--dataset", job.dataset]
    if job.out:
        argv += ["--out", job.out]
    if job.tta:
        argv.append("--tta")
    if job.max_samples is not None:
        argv += words("--max-samples", job.max_samples)
    if job.update_card:
        argv += ["--update-card", job.update_card]
    if job.device != "auto":
        argv += ["--device", job.device]
    return argv


def evaluate_model(job: EvaluateJob, progress=null_progress, cancel=None, title: str | None = None
                   ) -> dict:
    """Predict the dataset, write the report (when ``out``) and store the metrics in the card
    (when ``update_card``); returns :func:`~stackview.inference.evaluate.evaluate_bundle`'s
    result with ``bundle`` (the loaded bundle) and ``report`` (the report's path or None)."""
    from stackview.inference.evaluate import evaluate_bundle, write_report
    from stackview.models.bundle import load_bundle, update_card

    bundle = load_bundle(job.bundle)
    res = evaluate_bundle(bundle, job.dataset, tta=job.tta, max_samples=job.max_samples,
                          progress=progress, cancel=cancel, device=job.device)
    report = None
    if job.out:
        report = write_report(res, job.out, bundle.label_space,
                              title=title or f"{bundle.card.name} on {Path(job.dataset).name}")
    if job.update_card:
        update_card(bundle.path, accuracy={job.update_card: res["metrics"]})
    return {**res, "bundle": bundle, "report": report}

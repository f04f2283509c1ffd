"""The physics fit over every window of an analysis map (progress, cancel), for ``analyze --fit``.

:func:`fit_map` cuts each evaluated window of an :class:`stackview.inference.spm.SpmMap` with
the analysis's own :class:`~stackview.inference.spm.WindowSampler` (the model's frame and
sampling) and fits it from the network's reading there (:class:`stackview.fit.WindowFitter`);
the result is in the order of ``smap.points``. No Qt here.
"""

from __future__ import annotations

import numpy as np

from stackview.engine.jobs import CancelToken, null_progress

#: windows cut from the image at a time (a 128² window is 64 kB)
CHUNK = 256


def check_fittable(card) -> None:
    """Refuse, in one sentence, a model whose readings the fit cannot refine."""
    from stackview.errors import UsageError

    if (getattr(card, "spec", None) or {}).get("family", "parallel") != "parallel":
        raise UsageError(f"the physics fit does not read the stacking family yet; analyse "
                         f"with {card.name} without --fit")


def fitter_for_card(card, optics, settings=None):
    """A :class:`WindowFitter` for a model card's material, layers, sampling and window."""
    from stackview.fit.fit import WindowFitter

    check_fittable(card)
    return WindowFitter(card.material, card.task, card.layers, optics, card.sampling_A,
                        card.patch_px, settings)


def _rows_are_scan_lines(sampler, tolerance_deg: float = 2.0) -> bool:
    """Whether the sampler's window rows run along the image's rows (its fast-scan lines):
    no frame, or a frame whose window x axis is the image's x axis (either sense) within
    ``tolerance_deg``; only then can the fit model line jitter as shifts of window rows."""
    to_px = getattr(sampler, "to_px", None)
    if getattr(sampler, "frame", None) is None or to_px is None:
        return True
    step = np.asarray(to_px, dtype=float)[:, 0]  # a window x step, in image pixels (x, y)
    return bool(abs(step[1]) <= np.tan(np.radians(tolerance_deg)) * abs(step[0]))


def fit_map(smap, sampler, pixel_size_nm: float, card, optics, settings=None,
            progress=null_progress, cancel: CancelToken | None = None):
    """Fit every window of ``smap`` (rows of ``smap.points``) from its reading.

    Returns
    -------
    stackview.fit.FitResult
        One row per window, in the order of ``smap.points``.
    """
    import torch

    from stackview.fit.settings import FitResult

    cancel = cancel or CancelToken()
    fitter = fitter_for_card(card, optics, settings)
    scan_rows = _rows_are_scan_lines(sampler)
    pts = np.asarray(smap.points)
    n_lab = len(smap.names)
    centres_px = pts[:, :2] / pixel_size_nm
    parts = []
    threads = torch.get_num_threads()
    # one thread: on a machine shared with other jobs more threads oversubscribe the cores and
    # run the batched products several times slower (measured 5x on 2 busy cores)
    torch.set_num_threads(1)
    try:
        for s in range(0, len(pts), CHUNK):
            cancel.check()
            windows = sampler.extract(centres_px[s:s + CHUNK])

            def chunk_progress(done, total, message="", offset=s):
                progress(offset + done, len(pts), "windows fitted")

            parts.append(fitter.fit(windows, pts[s:s + CHUNK, 2:2 + n_lab], chunk_progress,
                                    cancel, scan_rows=scan_rows))
    finally:
        torch.set_num_threads(threads)
    if len(parts) == 1:
        return parts[0]
    merged = {}
    for name in ("labels", "sigma", "sigma_laplace", "sigma_D_A", "start", "moved_A", "ncc",
                 "chi2_red", "dose_per_px", "converged", "iterations", "covariance"):
        merged[name] = np.concatenate([getattr(p, name) for p in parts])
    params = {k: np.concatenate([p.params[k] for p in parts]) for k in parts[0].params}
    return FitResult(parts[0].names, merged["labels"], merged["sigma"], merged["sigma_laplace"],
                     merged["sigma_D_A"], merged["start"], merged["moved_A"], merged["ncc"],
                     merged["chi2_red"], merged["dose_per_px"], params, merged["converged"],
                     merged["iterations"], sum(p.seconds for p in parts),
                     merged["covariance"], parts[0].settings, parts[0].unit)

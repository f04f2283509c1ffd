"""The jobs the window runs, as plain functions ``fn(..., progress, cancel)`` (no Qt here).

Each one only composes the science library (the same calls ``stackview analyze`` makes), so the
window shows exactly the numbers the CLI writes; :func:`stackview.engine.qt.start_job` runs
them in a worker thread. Heavy modules are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError
from stackview.session.model import AnalysisSettings


@dataclass
class OpenedImage:
    """An image read from disk with the calibration the window starts from."""

    loaded: object  # stackview.io.readers.LoadedImage
    calibration: object | None  # stackview.analysis.calibration.Calibration, None if unknown
    message: str
    sha256: str = ""  # of the file as it was read (a saved session refers to it)
    size: int = 0


def open_image(path: str | Path, material: str | None, progress=null_progress,
               cancel: CancelToken | None = None) -> OpenedImage:
    """Read an image; calibrate it from metadata, else (given a material) from its lattice.

    A failed automatic calibration is not an error here: the user can type the pixel size.
    """
    from stackview.analysis.calibration import calibrate
    from stackview.io.readers import read_image
    from stackview.session.store import file_sha256

    progress(0, 2, "reading")
    loaded = read_image(path)
    sha256, size = file_sha256(path), Path(path).stat().st_size
    (cancel or CancelToken()).check()
    progress(1, 2, "calibrating")
    try:
        cal = calibrate(loaded.data, material, None, loaded.pixel_size_nm)
        message = cal.message
    except UsageError as exc:
        cal, message = None, f"not calibrated: {exc}"
    progress(2, 2, "")
    return OpenedImage(loaded, cal, message, sha256, size)


def auto_calibrate(image: np.ndarray, material: str, progress=null_progress, cancel=None):
    """Pixel size from the lattice: the FFT's candidate readings decided by re-simulation
    (the library's :func:`~stackview.analysis.lattice_reading.calibrate_by_resimulation`)."""
    from stackview.analysis.lattice_reading import calibrate_by_resimulation

    progress(0, 1, "reading the lattice")
    return calibrate_by_resimulation(image, material, progress=progress, cancel=cancel)


_BUNDLES: dict[str, object] = {}


def load_model(name: str | None, material: str | None, window_nm: float | None = None):
    """The bundle for ``name`` (or the material's default for ``window_nm``), cached by path."""
    from stackview.analysis.analyze import resolve_bundle
    from stackview.engine.devices import resolve_device

    window = None if name else window_nm
    key = f"{name}|{material}|{window}"
    if key not in _BUNDLES:
        bundle = resolve_bundle(name, material, window_nm=window)
        bundle.model.to(resolve_device("auto"))  # a CUDA GPU when torch sees one
        _BUNDLES[key] = bundle
    return _BUNDLES[key]


def run_analysis(path_or_image, settings: AnalysisSettings, progress=null_progress,
                 cancel: CancelToken | None = None):
    """The analyse workflow (as ``stackview analyze`` runs it) with the panel's settings and
    the cached model."""
    from stackview.engine.devices import module_device
    from stackview.workflows.analyze import AnalyzeJob, analyze_one

    bundle = load_model(settings.model, settings.material, settings.window_nm)
    inputs = (str(path_or_image),) if isinstance(path_or_image, (str, Path)) else ()
    job = AnalyzeJob.from_settings(settings, inputs)
    # the model stays where the window loaded it
    return analyze_one(job, path_or_image, bundle=bundle, device=module_device(bundle.model),
                       progress=progress, cancel=cancel)


@dataclass
class BatchResult:
    rows: list[dict]
    results: dict  # path -> AnalysisResult
    failures: list[tuple[str, str]]  # (file name, one sentence)


def run_batch(paths: list[Path], settings: AnalysisSettings, progress=null_progress,
              cancel: CancelToken | None = None) -> BatchResult:
    """Analyse every image with the same settings; a bad image is skipped and reported, as
    in the CLI. The ROI and a user pixel size apply to one image only, so they are dropped.
    The rows are ``stats.csv``'s, from the helper the CLI uses (unreliable images marked)."""
    from dataclasses import replace

    from stackview.analysis.batch import stats_row

    cancel = cancel or CancelToken()
    settings = replace(settings, roi_nm=None, pixel_size_nm=None)
    rows, results, failures = [], {}, []
    for k, path in enumerate(paths):
        cancel.check()
        progress(k, len(paths), Path(path).name)
        try:
            result = run_analysis(path, settings, cancel=cancel)
        except UsageError as exc:
            failures.append((Path(path).name, str(exc)))
            continue
        results[str(path)] = result
        rows.append(stats_row(result, path))
    progress(len(paths), len(paths), "")
    return BatchResult(rows, results, failures)


def write_batch(batch: BatchResult, out_dir: str | Path, figure_format: str = "png") -> Path:
    """Each image's folder plus ``stats.csv`` — the files ``stackview analyze FOLDER`` writes."""
    from stackview.analysis.analyze import write_results
    from stackview.analysis.export import write_stats_csv

    out = Path(out_dir)
    for result in batch.results.values():
        write_results(result, out, figure_format=figure_format)
    if batch.rows:
        write_stats_csv(out / "stats.csv", batch.rows)
    return out


def find_landscape(result, progress=null_progress, cancel=None):
    """The PEL of the result's material (the user's cached one, else the shipped one), or
    None when there is none yet or the analysis is not a bilayer slip map. For a family
    model's map, the landscape of the map's majority family (``statistics['majority_family']``).
    """
    from stackview.gui.stacking_view import pel_family
    from stackview.pel.figure import landscape_for_bundle

    try:
        return landscape_for_bundle("auto", result.bundle, pel_family(result))
    except UsageError:
        return None


@dataclass
class WindowInspection:
    """One analysis window beside the re-simulation of its inferred labels."""

    x_nm: float
    y_nm: float
    values: np.ndarray
    names: tuple[str, ...]
    check: object  # stackview.analysis.resimulate.WindowCheck
    atoms: object  # ase.Atoms of the inferred stack
    atoms_px: np.ndarray  # (k, 2) atom columns in the window's pixels (x, y), registered
    sampling_A: float
    analysis_ncc: float | None = None  # the NCC the analysis scored this window with
    ncc_threshold: float = 0.0  # below it a window is poor (the library's)
    bound: str = ""  # for twist windows beyond what a window resolves: "<3.0" or ">57.0"
    stacking: str = ""  # a family model's window: its family, class and distance to it


def nearest_window(smap, x_nm: float, y_nm: float) -> int:
    """Index in ``smap.points`` of the evaluated window whose centre is nearest the point."""
    pts = smap.points
    ok = np.all(np.isfinite(pts[:, 2:2 + len(smap.names)]), axis=1)
    if getattr(smap, "bounds", None) is not None:
        ok |= smap.bounds.side_points != 0
    d = np.hypot(pts[:, 0] - x_nm, pts[:, 1] - y_nm)
    d[~ok] = np.inf
    return int(np.argmin(d))


def poor_windows(smap) -> tuple[int, int, float] | None:
    """(poor, scored, threshold): how many scored windows fall below the library's poor-window
    NCC; None when the windows were not scored."""
    from stackview.analysis.trust import POOR_WINDOW_NCC

    if smap.ncc_points is None:
        return None
    scored = smap.ncc_points[np.isfinite(smap.ncc_points)]
    return int((scored < POOR_WINDOW_NCC).sum()), int(len(scored)), POOR_WINDOW_NCC


def window_ncc(smap, k: int) -> float | None:
    """The re-simulation NCC the analysis scored window ``k`` (a row of ``smap.points``)
    with; None when the windows were not scored or this one was not."""
    if smap.ncc_points is None or not np.isfinite(smap.ncc_points[k]):
        return None
    return float(smap.ncc_points[k])


def inspect_window(result, x_nm: float, y_nm: float, progress=null_progress,
                   cancel=None) -> WindowInspection:
    """Cut the window nearest (x, y) as the model saw it, re-simulate its labels, compare."""
    from stackview.analysis.analyze import optics_for_card
    from stackview.analysis.resimulate import atoms_for_labels, compare_window, simulate_window
    from stackview.analysis.trust import POOR_WINDOW_NCC
    from stackview.gui.stacking_view import window_stacking
    from stackview.inference.spm import WindowSampler

    smap, card = result.smap, result.bundle.card
    k = nearest_window(smap, x_nm, y_nm)
    x, y = float(smap.points[k, 0]), float(smap.points[k, 1])
    values = smap.points[k, 2:2 + len(smap.names)].astype(float)
    bound = ""
    if getattr(smap, "bounds", None) is not None and smap.bounds.side_points[k] != 0:
        # re-simulate what the network read, reported only as the bound
        bound = smap.bounds.label(int(smap.bounds.side_points[k]))
        values = np.array([smap.bounds.read_points[k]])
    px = result.calibration.pixel_size_nm
    progress(0, 3, "cutting the window")
    sampler = WindowSampler(result.image, px, card.sampling_A, card.patch_px, result.frame)
    window = sampler.extract(np.array([[x / px, y / px]]))[0]
    progress(1, 3, "re-simulating")
    simulated = simulate_window(card.material, card.task, values, card.sampling_A,
                                card.patch_px, optics_for_card(card))
    check = compare_window(window, simulated)
    progress(2, 3, "atomic model")
    fov = card.patch_px * card.sampling_A
    atoms = atoms_for_labels(card.material, card.task, values, (fov, fov))
    # pixel (i, j) of the simulation is the probe at ((j + .5) s, (i + .5) s); the display
    # puts pixel j on [j, j + 1], and the registration moved the simulation by shift (dy, dx)
    xy = atoms.positions[:, :2] / card.sampling_A + check.shift_px[::-1]
    # the margin atoms stand in for the wrapped-around part of the shifted simulation
    xy = xy[np.all((xy >= 0) & (xy < card.patch_px), axis=1)]
    progress(3, 3, "")
    return WindowInspection(x, y, values, smap.names, check, atoms, xy, card.sampling_A,
                            window_ncc(smap, k), POOR_WINDOW_NCC, bound, window_stacking(smap, k))

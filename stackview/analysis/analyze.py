"""The main job: analyse an experimental image into slip/twist maps and write the results.

:func:`analyze_image` reads and calibrates the image, picks the model and (for models trained on
aligned lattices) the lattice frame, runs SPM (one level or the two-level interface search),
derives the slip-vector field, the interface and statistics; :func:`write_results` writes
``map.csv``, the map TIFFs, ``figure.png`` and ``summary.json`` into ``OUT/<stem>/`` through a
temporary folder, so an error or a cancel never leaves partial results. The CLI and the GUI's
engine both call these. No Qt here.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stackview import __version__
from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError

log = logging.getLogger(__name__)


@dataclass
class AnalysisResult:
    """Everything an analysis produced (see :func:`analyze_image`)."""

    path: Path | None
    image: np.ndarray
    calibration: object
    bundle: object
    smap: object
    frame: object | None
    field: object | None
    interface: np.ndarray
    statistics: dict
    notes: list[str]
    seconds: float
    frame_scores: list[float] = field(default_factory=list)
    #: whether the reading can be trusted, and why not (one sentence) when it cannot
    reliable: bool = True
    reliability_reason: str = ""
    #: the lattice reading (:class:`stackview.analysis.lattice_reading.LatticeReading`)
    lattice: object | None = None
    undistorted: bool = True
    #: wall time of each stage (s): read, lattice, windows, check, maps
    stage_seconds: dict = field(default_factory=dict)
    #: the physics fit of every window (:class:`stackview.fit.FitResult`), with ``fit=True``
    fit: object | None = None

    def stats_row(self) -> dict:
        """This image's row of ``stats.csv`` (CLI folder runs and the GUI's batch panel)."""
        s = self.summary()
        row = {"image": self.path.name if self.path else "image", "n_windows": s["n_patches"],
               "pixel_size_nm": float(f"{s['pixel_size_nm']:.6g}"),
               "calibration": s["calibration_source"], "reliable": s["reliable"]}
        for n in self.smap.names:
            if n + "_median" in s:
                row[f"{n}_median"] = round(s[n + "_median"], 4)
                row[f"{n}_iqr"] = round(s[n + "_iqr"], 4)
        for n in self.smap.names:
            if f"{n}_median" in s.get("fit", {}):
                row[f"fit_{n}_median"] = s["fit"][f"{n}_median"]
        bound = s.get("twist_bound") or {}
        parts = ([f"<{bound['low_deg']:.1f} in {bound['below']}"] if bound.get("below") else []) \
            + ([f">{bound['high_deg']:.1f} in {bound['above']}"] if bound.get("above") else [])
        if parts:
            row["theta_bound"] = "; ".join(parts)
        return row

    def summary(self) -> dict:
        card = self.bundle.card
        s = self.smap
        out = {
            "stackview_version": __version__,
            "image": str(self.path) if self.path else None,
            "image_shape_px": list(self.image.shape),
            "material": card.material,
            "task": card.task,
            "layers": card.layers,
            "model": card.name,
            "model_style": card.style,
            "pixel_size_nm": float(self.calibration.pixel_size_nm),
            "calibration_source": self.calibration.source,
            "calibration_confidence": round(float(self.calibration.confidence), 3),
            "calibration_message": self.calibration.message,
            "window_nm": round(float(s.window_nm), 4),
            "stride_nm": round(float(s.stride_nm), 4),
            "mode": s.mode,
            "n_patches": s.n_patches,
            "seconds": round(self.seconds, 3),
            "spm_seconds": round(float(s.seconds), 3),
            "stage_seconds": self.stage_seconds,
            "patches_per_second": round(s.n_patches / s.seconds, 2) if s.seconds else None,
            "reliable": bool(self.reliable),
            "reliable_reason": self.reliability_reason,
            "statistics": self.statistics,
            "notes": self.notes,
            "label_convention": card.label_convention(),
        }
        for name in s.names:
            if name in self.statistics:
                out[f"{name}_median"] = self.statistics[name]["median"]
                out[f"{name}_iqr"] = self.statistics[name]["iqr"]
        if self.lattice is not None:
            out["lattice_reading"] = self.lattice.to_dict()
            out["scan_distortion"] = {**self.lattice.distortion.to_dict(),
                                      "corrected": bool(self.undistorted)}
            drift = getattr(self.lattice, "drift", None)
            if drift is not None:
                out["scan_distortion"]["change_top_to_bottom"] = {
                    **drift, "corrected": bool(self.undistorted and drift["corrected"])}
        if self.frame is not None:
            out["lattice_frame"] = {"rotation_deg": self.frame.rotation_deg,
                                    "mirror": self.frame.mirror,
                                    "a_px": list(self.frame.a_px), "b_px": list(self.frame.b_px),
                                    "candidate_scores_ncc": self.frame_scores}
        if s.ncc_points is not None and np.isfinite(s.ncc_points).any():
            out["resimulation_ncc_median"] = round(float(np.nanmedian(s.ncc_points)), 4)
        if s.extra:
            out["refinement"] = s.extra
        if s.bounds is not None:
            out["twist_bound"] = s.bounds.to_dict()
        if self.fit is not None:
            out["fit"] = self.fit.summary()
        if len(self.interface):
            out["interface_nm"] = np.round(self.interface, 4).tolist()
        if self.field is not None:
            out["slip_field_reference"] = {"slip_A": np.round(self.field.reference, 4).tolist(),
                                           "roi_nm": list(self.field.reference_roi_nm),
                                           "max_deviation_A":
                                               float(np.nanmax(self.field.magnitude_A))}
            if self.field.family:
                out["slip_field_reference"]["family"] = self.field.family
        return out


_LOADED: dict[str, object] = {}


def resolve_bundle(model: str | None, material: str | None, task: str | None = None,
                   field_nm: float | None = None, window_nm: float | None = None):
    """Load the requested model, or the bundled/user default for the material (by window,
    see :func:`stackview.models.registry.preferred_model`); defaults are loaded once."""
    from stackview.models.bundle import load_bundle
    from stackview.models.card import bundle_paths

    if model:
        return load_bundle(model)
    if not material:
        raise UsageError("give --model, or --material to use its default model")
    from stackview.materials import get_material
    from stackview.models.registry import preferred_model

    name = get_material(material).name
    entry = preferred_model(name, task, field_nm=field_nm, window_nm=window_nm)
    if entry is None:
        raise UsageError(f"there is no model for {name} yet; train one ('stackview train') or "
                         "give --model PATH")
    weights = bundle_paths(entry.path)[0]
    key = f"{entry.path}|{weights.stat().st_mtime_ns if weights.exists() else 0}"
    if key not in _LOADED:
        _LOADED[key] = load_bundle(entry.path)
    return _LOADED[key]


def optics_for_card(card):
    """The microscope preset a model was trained with (for re-simulating its windows)."""
    from stackview.simulation import resolve_optics
    from stackview.simulation.optics import DEFAULT_OPTICS, FALLBACK_OPTICS

    name = (card.training.get("data") or {}).get("optics") or DEFAULT_OPTICS.get(
        card.material, FALLBACK_OPTICS)
    return resolve_optics(name)


def analyze_image(
    image_or_path,
    model: str | None = None,
    bundle=None,
    material: str | None = None,
    pixel_size_nm: float | None = None,
    window_nm: float | None = None,
    stride_nm: float = 0.5,
    task: str | None = None,
    refine: bool = False,
    fine_stride_nm: float = 0.1,
    roi_nm=None,
    n_views: int = 1,
    undistort: bool = True,
    progress=null_progress,
    cancel: CancelToken | None = None,
    device=None,
    fit: bool = False,
    fit_settings=None,
    mode: str = "auto",
) -> AnalysisResult:
    """Analyse one image (path or 2-D array) into maps (see module docstring).

    Parameters
    ----------
    image_or_path
        Image file or a 2-D array (then ``pixel_size_nm`` or a material for FFT calibration).
    model, bundle
        Model name/path, or an already loaded bundle; default: the material's model for the
        image's field (or for ``window_nm``), see
        :func:`stackview.models.registry.preferred_model`.
    device
        Torch device to run the model on (default: where the bundle is).
    material
        Material of the sample (default: the model's).
    task
        With ``material`` and no model: ``"slip"`` or ``"twist"`` (default: slip where the
        material has a slip model).
    pixel_size_nm
        Overrides the file's calibration.
    stride_nm, refine, fine_stride_nm, roi_nm
        SPM settings: with ``refine`` the stride is the coarse one and ``fine_stride_nm`` is used
        around interfaces.
    mode
        ``window``, ``dense`` or ``auto`` (:func:`stackview.inference.dense.resolve_mode`:
        dense maps for models trained with context at the strides where they cost less than
        window maps, below 0.6 of the window with its margins; with ``refine``, decided for
        each level).
    fit, fit_settings
        Refine every window by fitting the incoherent model to it from the network's reading
        (:func:`stackview.fit.maps.fit_map`; slip and twist models): ``result.fit``.
    """
    from stackview.analysis.calibration import Calibration, calibrate
    from stackview.analysis.fields import (
        interface_polyline,
        label_statistics,
        slip_vector_field,
        stacking_columns,
    )
    from stackview.analysis.lattice_peaks import measured_lattice
    from stackview.analysis.lattice_reading import read_lattice
    from stackview.analysis.lattice_scorers import ResimulationScorer
    from stackview.analysis.trust import Resimulator, judge, score_windows
    from stackview.core.labels import SlipLabels
    from stackview.inference.dense import dense_map, resolve_mode
    from stackview.inference.spm import WindowSampler, refine_map, spm_map
    from stackview.io.readers import read_image

    cancel = cancel or CancelToken()
    resolve_mode(mode, None, 0.0, check_only=True)
    start = time.perf_counter()
    clock = [start]

    def _lap() -> float:
        now = time.perf_counter()
        lap, clock[0] = now - clock[0], now
        return round(lap, 3)

    notes: list[str] = []
    if isinstance(image_or_path, (str, Path)):
        loaded = read_image(image_or_path)
        image, path, meta_px = loaded.data, loaded.path, loaded.pixel_size_nm
        notes += loaded.notes
    else:
        image = np.asarray(image_or_path, dtype=np.float32)
        if image.ndim != 2 or not np.all(np.isfinite(image)):
            raise UsageError("the image must be a 2-D array of finite numbers")
        path, meta_px = None, None
    chosen_by_field = bundle is None and not model
    fixed_px = pixel_size_nm if pixel_size_nm is not None else meta_px
    if bundle is None:
        # a first choice by the field the file's calibration gives (or the largest window);
        # made again below once the lattice has given the pixel size
        field = min(image.shape) * fixed_px if fixed_px else None
        bundle = resolve_bundle(model, material, task, field_nm=field, window_nm=window_nm)
    if device is not None:
        bundle.model.to(device)
    card = bundle.card
    if material is not None:
        from stackview.materials import get_material

        if get_material(material).name != card.material:
            raise UsageError(f"model {card.name} is for {card.material}, not {material}")
    if fit:
        from stackview.fit.maps import check_fittable

        check_fittable(card)  # before any window is read
    stages: dict[str, float] = {"read": _lap()}
    cancel.check()
    progress(0, 1, "reading the lattice")
    calibration = calibrate(image, None, pixel_size_nm, meta_px) if fixed_px else None
    reading, frame, scores = None, None, []
    try:
        lattice_px, _, peaks = measured_lattice(image, with_peaks=True)
    except UsageError as exc:
        if card.orientation == "aligned" or fixed_px is None:
            raise UsageError(f"{exc}; {card.name} needs the lattice to read the image") from None
        lattice_px = None
        notes.append(f"{exc}; the windows are read unrotated and without distortion correction")
    if lattice_px is not None:
        scorer = ResimulationScorer(image, bundle, optics_for_card(card), undistort=undistort,
                                    pixel_size_nm=fixed_px)
        try:
            reading = read_lattice(image, card.material, scorer, pixel_size_nm=fixed_px,
                                   lattice_px=(lattice_px, peaks), cancel=cancel,
                                   progress=progress)
        except UsageError:
            if pixel_size_nm is not None or meta_px is None:
                raise
            # the file's tags are more than 10 % off the lattice: read the scale from it
            scorer.pixel_size_nm = fixed_px = calibration = None
            reading = read_lattice(image, card.material, scorer,
                                   lattice_px=(lattice_px, peaks), cancel=cancel,
                                   progress=progress)
            notes.append(f"the file's pixel size ({meta_px:.5g} nm) does not fit the "
                         f"{card.material} lattice; the lattice gives "
                         f"{reading.pixel_size_nm:.5g} nm, which is used")
        frame = reading.best.frame(undistort, fixed_px)
        scores = [h.score for h in reading.hypotheses]
        if calibration is None:
            calibration = Calibration(
                reading.pixel_size_nm, "fft", reading.confidence,
                np.stack([reading.best.a_px, reading.best.b_px]),
                f"pixel size {reading.pixel_size_nm:.5g} nm/px from the {card.material} "
                f"lattice, decided by re-simulation among {len(scores)} readings "
                f"(confidence {reading.confidence:.2f})")
        notes.append(_frame_note(frame, reading, undistort))
        if card.task == "slip" and card.layers == 3:
            from stackview.core.labels import projected_symmetry

            if projected_symmetry(card.material)[0] % 2 == 0:
                notes.append("a half-turned trilayer gives the same image, so the slips are "
                             "read in the reported lattice frame: with a along the opposite "
                             "direction they read (−Da, −Db, −Dc, −Dd)")
    resimulator = scorer.resim if lattice_px is not None else None
    if chosen_by_field and window_nm is None:
        other = resolve_bundle(None, card.material, card.task,
                               field_nm=min(image.shape) * calibration.pixel_size_nm)
        if other.card.name != card.name:
            bundle, card, resimulator = other, other.card, None
            if device is not None:
                bundle.model.to(device)
    stages["lattice"] = _lap()
    sampler = WindowSampler.for_model(image, calibration.pixel_size_nm, card, frame)
    used = resolve_mode(mode, bundle, fine_stride_nm if refine else stride_nm)
    if refine:
        smap = refine_map(image, calibration.pixel_size_nm, bundle, coarse_stride_nm=stride_nm,
                          fine_stride_nm=fine_stride_nm, roi_nm=roi_nm, frame=frame,
                          n_views=n_views, progress=progress, cancel=cancel, sampler=sampler,
                          fine_mode=used, coarse_mode=resolve_mode(mode, bundle, stride_nm))
    elif used == "dense":
        smap = dense_map(image, calibration.pixel_size_nm, bundle, stride_nm, roi_nm,
                         progress, cancel, frame=frame, n_views=n_views, sampler=sampler)
    else:
        smap = spm_map(image, calibration.pixel_size_nm, bundle, stride_nm, window_nm, roi_nm,
                       frame, n_views=n_views, progress=progress, cancel=cancel,
                       sampler=sampler)
    stages["windows"] = _lap()
    cancel.check()
    resimulator = resimulator or Resimulator(card.material, card.task, card.sampling_A,
                                             card.patch_px, optics_for_card(card))
    if sampler.frame is not None and _beyond_edges(image, calibration.pixel_size_nm, smap,
                                                   sampler):
        notes.append("the image is about one window wide: the windows' corners reach beyond "
                     "its edges and are filled with the lattice continued by whole cells")
    score_windows(image, calibration.pixel_size_nm, smap, sampler, resimulator, progress,
                  cancel)
    every = smap.extra.get("ncc_check_every")
    if every:
        notes.append(f"the re-simulation check read every {every}th window along each axis "
                     f"({every * smap.stride_nm:.2g} nm apart); the windows between share most "
                     "of their pixels with them and take the nearest one's agreement")
    stages["check"] = _lap()
    fit_result = None
    if fit:
        from stackview.fit.maps import fit_map

        fit_result = fit_map(smap, sampler, calibration.pixel_size_nm, card,
                             optics_for_card(card), fit_settings, progress, cancel)
        stages["fit"] = _lap()
    reliable, reason = judge(smap, reading, card.task)
    space = bundle.label_space
    if card.task == "twist":
        from stackview.analysis.twist_bounds import apply_twist_bounds, decide_sides

        bounds = apply_twist_bounds(smap, space)
        decide_sides(bounds, smap, sampler, calibration.pixel_size_nm, resimulator, cancel,
                     progress)
        if bounds.text():
            notes.append(bounds.text())
    del sampler  # its spline coefficients are as large as the image
    stats = label_statistics(smap.values.reshape(-1, len(smap.names)), smap.names, space)
    smap.stacking = stacking_columns(smap, space)
    field_ = slip_vector_field(smap, space, frame) if isinstance(space, SlipLabels) else None
    interface = interface_polyline(smap, space)
    stages["maps"] = _lap()
    return AnalysisResult(path, image, calibration, bundle, smap, frame, field_, interface,
                          stats, notes, time.perf_counter() - start, scores, reliable, reason,
                          reading, undistort, stages, fit_result)


def _frame_note(frame, reading, undistort: bool) -> str:
    d = reading.distortion
    text = (f"read the lattice with a along {frame.rotation_deg:+.1f}° from +x"
            + (" on the mirrored image (the other face)" if frame.mirror else "")
            + f" (best of {len(reading.hypotheses)} readings of scale, orientation and face "
            f"by re-simulation, NCC {reading.best.score:.2f})")
    if not reading.best.precise:
        text += ("; the field holds too few cells to measure the scan distortion, so the "
                 "windows are only rotated and scaled")
    elif d.magnitude > 0.003:
        text += ("; undid" if undistort else "; did not undo (--no-undistort)") + (
            f" a scan distortion of {100 * (d.scale_x / d.scale_y - 1):+.1f} % fast/slow scale "
            f"and {100 * d.shear:+.1f} % shear")
    drift = reading.drift
    if drift is not None and drift["corrected"]:
        text += ((", and" if undistort else ", nor") + " its change from the top to the "
                 f"bottom of the image ({100 * drift['shear_change']:+.2f} % shear, "
                 f"{100 * drift['scale_y_change']:+.2f} % slow-scan scale: the drift changed "
                 "during the scan)")
    return text


def _beyond_edges(image, pixel_size_nm: float, smap, sampler) -> bool:
    ny, nx = np.shape(image)
    half_nm = sampler.half_extent_px * pixel_size_nm
    x, y = smap.points[:, 0], smap.points[:, 1]
    return bool(np.any((x - half_nm < -1e-6) | (x + half_nm > nx * pixel_size_nm + 1e-6)
                       | (y - half_nm < -1e-6) | (y + half_nm > ny * pixel_size_nm + 1e-6)))


def write_results(result: AnalysisResult, out_dir: str | Path, stem: str | None = None,
                  figure_format: str = "png") -> Path:
    """Write the result's files into ``out_dir/<stem>/`` atomically (see module docstring)."""
    from stackview.analysis.export import (
        write_figure,
        write_map_csv,
        write_map_tiffs,
        write_summary,
    )

    out_dir = Path(out_dir)
    stem = stem or (result.path.stem if result.path else "image")
    final = out_dir / stem
    tmp = out_dir / f".{stem}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write_map_csv(tmp / "map.csv", result.smap, fit=result.fit)
        write_map_tiffs(tmp, result.smap)
        write_figure(tmp / f"figure.{figure_format}", result.image,
                     result.calibration.pixel_size_nm, result.smap, result.field,
                     result.interface, title=stem, reliable=result.reliable,
                     reliability_reason=result.reliability_reason)
        write_summary(tmp / "summary.json", result.summary())
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final

"""Reading a real image's lattice: pixel size, lattice frame, face and scan distortion.

The FFT of a real file gives a measured lattice (two vectors in pixels), but not which cell of
the material it is: projected stacks have weak fundamental reflections and strong higher orders
(hexagonal cells: √3 and 2 shells; ReS2/ReSe2: Re4-chain reflections), so the strongest peaks
may index a sub- or supercell, and near-hexagonal cells fit the measured vectors in several
orientations. So the reading is a search over hypotheses: every cell of index 1–4 related to
the measured lattice (super- and sub-cells) × every assignment of the material's a, b to its
short vectors (both faces), kept when the affine map between the material's cell and the
measured one is a plausible scan distortion, and decided by how well the re-simulated stack
matches a few windows read under each hypothesis (:func:`read_lattice`). The affine map itself
is the distortion correction: windows are sampled through it, so a few per cent of fast/slow
scan scale and shear (linear drift) are undone before the model sees them.

Geometry: image offsets are (x = column, y = row) in pixels; the material's Cartesian frame
(Å) has a along +x. ``px_per_A`` maps material Cartesian offsets (Å) to image offsets (px).
No Qt here; torch only inside the scorers.

The parts: :mod:`~stackview.analysis.lattice_peaks` (the measured lattice and the FFT peaks),
:mod:`~stackview.analysis.lattice_candidates` (the readings searched),
:mod:`~stackview.analysis.lattice_scorers` (their re-simulation scores),
:mod:`~stackview.analysis.scan_distortion` (the affine map and its change down the image); this
module decides among the readings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from stackview.analysis.lattice_candidates import LatticeHypothesis, lattice_hypotheses
from stackview.analysis.lattice_peaks import measured_lattice
from stackview.analysis.lattice_scorers import MonolayerScorer, ResimulationScorer
from stackview.analysis.scan_distortion import ScanDistortion, measure_drift
from stackview.errors import UsageError
from stackview.materials import get_material
from stackview.materials.cell import Material

#: NCC margin by which the best scale must beat the best other scale to be called decided
MIN_SCALE_MARGIN = 0.05
#: NCC margin below which two orientations/faces that give different labels are ambiguous
MIN_FRAME_MARGIN = 0.03


@dataclass
class LatticeReading:
    """The chosen hypothesis and the evidence for it.

    ``confidence`` (0–1) combines the best NCC and its margin over the best reading at another
    scale; ``reliable`` is False with a one-sentence ``reason`` when the best match is poor or
    another scale matches almost as well.
    """

    best: LatticeHypothesis
    hypotheses: list[LatticeHypothesis]
    confidence: float
    reliable: bool
    reason: str = ""
    scale_margin: float = float("nan")
    frame_margin: float = float("nan")
    notes: list[str] = field(default_factory=list)
    drift: dict | None = None

    @property
    def pixel_size_nm(self) -> float:
        return self.best.pixel_size_nm

    @property
    def distortion(self) -> ScanDistortion:
        return self.best.distortion

    def to_dict(self) -> dict:
        return {"pixel_size_nm": round(self.pixel_size_nm, 7),
                "confidence": round(self.confidence, 3), "reliable": self.reliable,
                "reason": self.reason, "best_ncc": _r(self.best.score),
                "scale_margin_ncc": _r(self.scale_margin),
                "frame_margin_ncc": _r(self.frame_margin),
                "scan_distortion": self.distortion.to_dict(),
                "drift_change_top_to_bottom": self.drift,
                "hypotheses": [{"pixel_size_nm": round(h.pixel_size_nm, 7),
                                "scale": h.scale_label, "anisotropy": round(h.anisotropy, 4),
                                "ncc": _r(h.score), "windows": 2 if h.quick else "all"}
                               for h in self.hypotheses]}


def _r(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 4)


def read_lattice(image: np.ndarray, material: Material | str, scorer=None,
                 pixel_size_nm: float | None = None, lattice_px: np.ndarray | None = None,
                 cancel=None, progress=None) -> LatticeReading:
    """Read the image's lattice (see module docstring).

    Parameters
    ----------
    image
        2-D image.
    material
        The sample's material.
    scorer
        ``scorer(hypothesis) -> float``: agreement (median NCC) of windows read under a
        hypothesis with their re-simulation (:class:`ResimulationScorer`); default: a
        monolayer re-simulation of the material (for images without a model).
    pixel_size_nm
        A known pixel size (the user's or the file's): only readings within 10 % of it are
        searched, and the orientation/face/distortion still are.
    lattice_px
        The measured lattice, if already known (rows, px), or ``(lattice, peaks)`` as
        :func:`measured_lattice` gives them with ``with_peaks``.
    """
    material = get_material(material)
    img = np.asarray(image, dtype=np.float32)
    peaks = None
    if lattice_px is None:
        lattice_px, _, peaks = measured_lattice(img, with_peaks=True)
    elif isinstance(lattice_px, tuple):  # (lattice, peaks) from measured_lattice
        lattice_px, peaks = lattice_px
    hyps = lattice_hypotheses(lattice_px, material, pixel_size_nm=pixel_size_nm, peaks=peaks,
                              field_px=float(min(img.shape)))
    if not hyps:
        if pixel_size_nm is not None:
            raise UsageError(
                f"no {material.name} lattice with a pixel size near {pixel_size_nm:.5g} nm fits "
                "the image's FFT; check the pixel size and the material")
        raise UsageError(f"the lattice in the image does not match {material.name}'s cell "
                         "(even allowing for scan distortion); check the material")
    if scorer is None:
        scorer = MonolayerScorer(img, material)
    # a quick pass over every reading with two windows, then the full set of windows for the
    # leaders and for the best reading at every other scale (which the margin compares with)
    quick = []
    for i, h in enumerate(hyps):
        if cancel is not None:
            cancel.check()
        quick.append(float(scorer(h, n_windows=2)) if len(hyps) > 4 else np.nan)
        if progress is not None:
            progress(i + 1, len(hyps) + 6, "lattice readings")
    order = np.argsort(-np.nan_to_num(quick, nan=2.0))
    chosen = list(order[:4])
    for i in order:
        if all(abs(hyps[i].pixel_size_nm / hyps[j].pixel_size_nm - 1) > 0.03 for j in chosen):
            chosen.append(i)
    scored = [replace(h, score=q) for h, q in zip(hyps, quick, strict=True)]
    for k, i in enumerate(chosen):
        if cancel is not None:
            cancel.check()
        scored[i] = replace(hyps[i], score=float(scorer(hyps[i])))
        if progress is not None:
            progress(len(hyps) + min(6, k + 1), len(hyps) + 6, "lattice readings")
    full = {int(i) for i in chosen}
    scored = [h if i in full else replace(h, quick=True) for i, h in enumerate(scored)]
    # readings scored with two windows only rank below every fully scored one
    scored.sort(key=lambda h: (h.quick, -np.nan_to_num(h.score, nan=-2)))
    best = scored[0]
    other_scale = [h.score for h in scored[1:]
                   if not h.quick and abs(h.pixel_size_nm / best.pixel_size_nm - 1) > 0.03]
    same_scale = [h.score for h in scored[1:]
                  if not h.quick and abs(h.pixel_size_nm / best.pixel_size_nm - 1) <= 0.03]
    scale_margin = best.score - max(other_scale) if other_scale else 1.0
    frame_margin = best.score - max(same_scale) if same_scale else 1.0
    reason = ""
    from stackview.analysis.trust import min_ncc as task_min_ncc

    min_ncc = task_min_ncc(getattr(scorer, "task", "slip"))
    confidence = float(np.clip((best.score - (min_ncc - 0.2)) / 0.4, 0, 1)
                       * np.clip(scale_margin / (2 * MIN_SCALE_MARGIN), 0, 1))
    if not best.score >= min_ncc:
        reason = (f"no reading of the {material.name} lattice re-simulates the image well "
                  f"(best NCC {best.score:.2f}); check the material, the pixel size and that the "
                  "image shows this stack")
    elif scale_margin < MIN_SCALE_MARGIN:
        alt = next(h for h in scored[1:] if not h.quick
                   and abs(h.pixel_size_nm / best.pixel_size_nm - 1) > 0.03)
        reason = (f"the pixel size is ambiguous: {best.pixel_size_nm:.5g} nm/px (NCC "
                  f"{best.score:.2f}) and {alt.pixel_size_nm:.5g} nm/px (NCC {alt.score:.2f}) "
                  "re-simulate the image almost equally well; give --pixel-size")
    rival = next((h for h in scored[1:] if not h.quick
                  and abs(h.pixel_size_nm / best.pixel_size_nm - 1) <= 0.03), None)
    if not reason and rival is not None and frame_margin < MIN_FRAME_MARGIN \
            and hasattr(scorer, "label_distance"):
        apart = scorer.label_distance(best, rival)
        if apart > scorer.label_tolerance:
            wins, n = scorer.paired(best, rival)
            if wins < 0.2 * n:  # the rival is the better reading, window by window
                i, j = scored.index(best), scored.index(rival)
                scored[i], scored[j] = rival, best
                best, rival, wins = rival, best, n - wins
            if wins < 0.8 * n:
                confidence *= float(np.clip(frame_margin / MIN_FRAME_MARGIN, 0, 1))
                reason = (f"the lattice's orientation or face is ambiguous: two readings "
                          f"re-simulate the image almost equally well (NCC {best.score:.2f} "
                          f"and {rival.score:.2f}, the first better in {wins} of {n} windows) "
                          f"but give labels {apart:.2f} apart")
    drift = None
    if getattr(scorer, "task", None) != "twist":
        # a third of a twisted bilayer's field does not part the two layers' reflections
        # (10° apart they blend in a band's spectrum, and domains of other twist differ
        # between bands), so the change across the image is not read there
        best, drift = measure_drift(img, best, material)
    scored[0] = best
    return LatticeReading(best, scored, confidence, not reason, reason, float(scale_margin),
                          float(frame_margin), drift=drift)


def calibrate_by_resimulation(image, material, bundle=None, progress=None, cancel=None):
    """A :class:`stackview.analysis.calibration.Calibration` from :func:`read_lattice`: decided by
    the model's re-simulated readings when a bundle is given, else by a monolayer
    re-simulation of the material (model-free; what the window's Auto button uses)."""
    from stackview.analysis.calibration import Calibration

    img = np.asarray(image, dtype=np.float32)
    scorer = None
    if bundle is not None:
        from stackview.analysis.analyze import optics_for_card

        scorer = ResimulationScorer(img, bundle, optics_for_card(bundle.card))
    reading = read_lattice(img, material, scorer, cancel=cancel, progress=progress)
    name = get_material(material).name
    message = (f"pixel size {reading.pixel_size_nm:.5g} nm/px from the {name} lattice, decided "
               f"by re-simulation among {len(reading.hypotheses)} readings (confidence "
               f"{reading.confidence:.2f})")
    if not reading.reliable:
        message += f"; {reading.reason}"
    return Calibration(reading.pixel_size_nm, "fft", reading.confidence,
                       np.stack([reading.best.a_px, reading.best.b_px]), message)

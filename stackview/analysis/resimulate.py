"""Atomic models from inferred labels, their re-simulation and comparison with the image.

The paper's Fig. 4g check: build the stack a window's inferred slip/twist describes, simulate it
with the model's imaging conditions, register it onto the experimental window and report the
normalised cross-correlation and a line profile through both. The same comparison picks the
lattice frame in which an aligned model reads an image (:func:`choose_frame`). No Qt here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from stackview.analysis.compare import ncc, register_translation
from stackview.errors import UsageError
from stackview.io.atomic import atomic_path
from stackview.materials import build_stack, build_twisted, get_material

log = logging.getLogger(__name__)

EXPORT_FORMATS = {".xyz": "extxyz", ".cif": "cif", ".vasp": "vasp", ".poscar": "vasp"}


def atoms_for_labels(material, task: str, values, fov_A, margin_A: float = 8.0,
                     interlayer_A: float | None = None, top_shift_A=(0.0, 0.0)):
    """``ase.Atoms`` of the stack that labels describe (slip (Da, Db[, Dc, Dd]) Å or θ°;
    ``top_shift_A`` moves a twisted stack's top layer, and so its moiré)."""
    material = get_material(material)
    values = np.atleast_1d(np.asarray(values, dtype=float))
    if task == "twist":
        return build_twisted(material, float(values[0]), fov_A=fov_A, margin_A=margin_A,
                             interlayer_A=interlayer_A, top_shift_A=top_shift_A)
    return build_stack(material, values.reshape(-1, 2), fov_A=fov_A, margin_A=margin_A,
                       interlayer_A=interlayer_A)


def export_atoms(atoms, path: str | Path) -> Path:
    """Write an atomic model as xyz / CIF / POSCAR (by suffix), atomically."""
    import ase.io

    path = Path(path)
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None and path.name.upper() != "POSCAR":
        raise UsageError(f"atomic models are written as {', '.join(EXPORT_FORMATS)} or POSCAR; "
                         f"not {path.suffix or path.name}")
    fmt = fmt or "vasp"
    out = atoms.copy()
    if fmt in ("cif", "vasp"):
        out.pbc = True  # these formats need a cell; the box is the field of view plus margin
        out.positions = out.positions - out.positions.min(axis=0) + 1.0
    with atomic_path(path) as tmp:
        ase.io.write(tmp, out, format=fmt)
    return path


def simulate_window(material, task: str, values, sampling_A: float, patch_px: int,
                    optics, top_shift_A=(0.0, 0.0)) -> np.ndarray:
    """Noise-free incoherent simulation of a window with the given labels."""
    from stackview.simulation import simulate

    fov = (patch_px * sampling_A, patch_px * sampling_A)
    atoms = atoms_for_labels(material, task, values, fov, top_shift_A=top_shift_A)
    return simulate(atoms, optics, sampling_A=sampling_A, fov_A=fov).image


@dataclass
class WindowCheck:
    """Experimental window against the re-simulation of its inferred labels."""

    window: np.ndarray
    simulated: np.ndarray
    ncc: float
    shift_px: np.ndarray
    profile_experiment: np.ndarray
    profile_simulation: np.ndarray


def _norm(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return (a - a.mean()) / (a.std() + 1e-12)


def compare_window(window: np.ndarray, simulated: np.ndarray, border_px: int | None = None
                   ) -> WindowCheck:
    """Register ``simulated`` onto ``window`` (translation) and compare them.

    The lattice origin of the re-simulation is arbitrary, so the simulation is shifted onto
    the window first; the NCC is computed away from the edges, and the line profiles run along
    the middle row of both.
    """
    w = np.asarray(window, dtype=float)
    s = np.asarray(simulated, dtype=float)
    shift = register_translation(w, s)
    aligned = ndimage.shift(s, shift, order=3, mode="grid-wrap")
    b = border_px if border_px is not None else max(2, w.shape[0] // 8)
    core = (slice(b, -b), slice(b, -b))
    value = ncc(w[core], aligned[core])
    row = w.shape[0] // 2
    return WindowCheck(w, aligned, value, shift, _norm(w[row]), _norm(aligned[row]))


def choose_frame(image, pixel_size_nm: float, bundle, frames, optics, n_windows: int = 6,
                 seed: int = 0, cancel=None):
    """The frame in which the aligned model's predictions re-simulate best.

    For each candidate frame, ``n_windows`` windows spread over the image are predicted,
    re-simulated with the predicted labels and registered onto the window; the frame with the
    highest median NCC wins. Returns ``(frame, scores)`` with scores per frame.
    """
    import torch

    from stackview.engine.devices import module_device
    from stackview.inference.spm import WindowSampler, window_centres_nm

    card = bundle.card
    space = bundle.label_space
    rng = np.random.default_rng(seed)
    scores = []
    for frame in frames:
        if cancel is not None:
            cancel.check()
        sampler = WindowSampler(image, pixel_size_nm, card.sampling_A, card.patch_px, frame)
        x_nm, y_nm = window_centres_nm(np.shape(image), pixel_size_nm, sampler,
                                       stride_nm=card.patch_nm / 2)
        if len(x_nm) == 0 or len(y_nm) == 0:
            scores.append(-1.0)
            continue
        yy, xx = np.meshgrid(y_nm, x_nm, indexing="ij")
        pts = np.column_stack([xx.ravel(), yy.ravel()])
        pick = pts[rng.choice(len(pts), size=min(n_windows, len(pts)), replace=False)]
        windows = sampler.extract(pick / pixel_size_nm)
        with torch.inference_mode():
            x = torch.from_numpy(windows).unsqueeze(1).to(module_device(bundle.model))
            preds = bundle.model(x).float().cpu().numpy()
        values = [np.atleast_1d(space.canonical(p)) for p in preds]
        nccs = [compare_window(w, simulate_window(card.material, card.task, v, card.sampling_A,
                                                  card.patch_px, optics)).ncc
                for w, v in zip(windows, values, strict=True)]
        scores.append(float(np.median(nccs)))
        log.info("frame rot %.1f° mirror %s: median NCC %.3f", frame.rotation_deg, frame.mirror,
                 scores[-1])
    best = int(np.argmax(scores))
    return frames[best], scores

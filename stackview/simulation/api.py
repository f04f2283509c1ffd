"""The one simulation interface: :func:`simulate` and its result :class:`SimulatedImage`.

``simulate(atoms, optics, sampling_A, fov_A, origin_A, method=...)`` dispatches to the fast
incoherent simulator (:mod:`.incoherent`, default) or to abTEM multislice (:mod:`.multislice`)
with the same field of view, pixel convention (:mod:`.grid`) and metadata. It must not import
Qt; abTEM is imported only inside the multislice method.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cross_sections import cross_section_model
from .grid import as_xy_pair, image_shape, pixel_centers_A
from .optics import Optics

__all__ = ["SimulatedImage", "simulate", "METHODS", "CoverageWarning", "check_coverage"]

logger = logging.getLogger(__name__)

METHODS = ("incoherent", "multislice")

PIXEL_CONVENTION = (
    "image[i, j] is the ADF signal with the probe at x = origin_x + (j + 0.5) * sampling_A, "
    "y = origin_y + (i + 0.5) * sampling_A (rows along +y, columns along +x)"
)


class CoverageWarning(UserWarning):
    """The atoms do not extend past the field of view by the probe-tail radius."""


@dataclass
class SimulatedImage:
    """A simulated ADF-STEM image and how it was made.

    Attributes
    ----------
    image : numpy.ndarray
        float32 array (ny, nx); rows along +y, columns along +x; pixel (i, j) is the signal
        with the probe at ``origin_A + ((j + 0.5) s, (i + 0.5) s)``. Values: fraction of the
        probe current scattered onto the ADF detector.
    sampling_A : float
        Pixel size in Å.
    optics : Optics
        Imaging conditions.
    method : str
        "incoherent" or "multislice".
    metadata : dict
        JSON-serialisable description (field of view, origin, optics, method details, the
        structure's ``atoms.info`` labels, timing).
    origin_A : (float, float)
        Lower corner (x0, y0) of the field of view in Å.
    """

    image: np.ndarray
    sampling_A: float
    optics: Optics
    method: str
    metadata: dict[str, Any] = field(default_factory=dict)
    origin_A: tuple[float, float] = (0.0, 0.0)

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (ny, nx)."""
        return tuple(self.image.shape)  # type: ignore[return-value]

    @property
    def fov_A(self) -> tuple[float, float]:
        """Field of view (width x, height y) in Å: shape times sampling."""
        ny, nx = self.image.shape
        return (nx * self.sampling_A, ny * self.sampling_A)

    def pixel_centers_A(self) -> tuple[np.ndarray, np.ndarray]:
        """Probe positions of the pixel centres, ``(x[nx], y[ny])`` in Å."""
        return pixel_centers_A(self.image.shape, self.sampling_A, self.origin_A)


def _jsonable(value: Any) -> Any:
    """Best-effort conversion of ``atoms.info`` values to JSON types (None if impossible)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        items = [_jsonable(v) for v in value]
        return items
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return None


def check_coverage(
    positions_xy_A: np.ndarray,
    fov_A: tuple[float, float],
    origin_A: tuple[float, float],
    needed_A: float,
    tolerance_A: float = 1.0,
) -> list[str]:
    """Sides of the field of view that the atoms do not cover by ``needed_A``.

    Checks the atoms' bounding box against ``[origin - needed, origin + fov + needed]``,
    allowing ``tolerance_A`` for the lattice granularity of the edge.

    Returns
    -------
    list of str
        Subset of ``["left (-x)", "right (+x)", "bottom (-y)", "top (+y)"]``; empty if covered.
    """
    if len(positions_xy_A) == 0:
        return ["left (-x)", "right (+x)", "bottom (-y)", "top (+y)"]
    lo = np.min(positions_xy_A, axis=0)
    hi = np.max(positions_xy_A, axis=0)
    need = needed_A - tolerance_A
    sides = []
    if lo[0] > origin_A[0] - need:
        sides.append("left (-x)")
    if hi[0] < origin_A[0] + fov_A[0] + need:
        sides.append("right (+x)")
    if lo[1] > origin_A[1] - need:
        sides.append("bottom (-y)")
    if hi[1] < origin_A[1] + fov_A[1] + need:
        sides.append("top (+y)")
    return sides


def simulate(
    atoms: Any,
    optics: Optics,
    sampling_A: float,
    fov_A: float | Sequence[float],
    origin_A: Sequence[float] = (0.0, 0.0),
    method: str = "incoherent",
    progress: Callable[[int, int], None] | None = None,
    **kw: Any,
) -> SimulatedImage:
    """Simulate an ADF-STEM image of a structure.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure, already extending beyond the field of view on every side by at least
        the probe tail (a few Å; the materials builders add a margin). Only x, y (and, for
        multislice, z) positions and atomic numbers are used; the cell is ignored.
    optics : Optics
        Imaging conditions (e.g. ``PRESETS["ReS2-300kV"]``).
    sampling_A : float
        Pixel size in Å/px.
    fov_A : float or (float, float)
        Field of view (width x, height y) in Å; the image has
        ``(round(fov_y / s), round(fov_x / s))`` pixels.
    origin_A : (float, float)
        Lower corner (x0, y0) of the field of view in Å.
    method : {"incoherent", "multislice"}
        Fast incoherent-imaging approximation, or abTEM multislice (slow).
    progress : callable, optional
        ``progress(done, total)`` called as the work advances.
    **kw
        Method options: see :func:`.incoherent.render_incoherent` (``tail_A``, ``spread``,
        ``parametrization``, ``workers``) and :func:`.multislice.simulate_multislice`.

    Returns
    -------
    SimulatedImage

    Raises
    ------
    ValueError
        For an unknown method, a non-positive sampling, a field of view below one pixel,
        or a structure without atoms.

    Warns
    -----
    CoverageWarning
        If the atoms do not extend past the field of view by the probe-tail radius.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown simulation method {method!r}; choose one of {METHODS}.")
    if not isinstance(optics, Optics):
        raise ValueError(f"optics must be an Optics instance, got {type(optics).__name__}.")
    shape = image_shape(fov_A, float(sampling_A))
    origin = as_xy_pair(origin_A, "origin_A")
    fov = (shape[1] * sampling_A, shape[0] * sampling_A)
    fov_requested = as_xy_pair(fov_A, "fov_A")
    if any(abs(a - b) > 1e-6 * max(1.0, b) for a, b in zip(fov, fov_requested, strict=True)):
        logger.info(
            "fov %.4g x %.4g Å is not a whole number of %.4g Å pixels: using %.4g x %.4g Å",
            *fov_requested,
            sampling_A,
            *fov,
        )
    if len(atoms) == 0:
        raise ValueError("The structure has no atoms.")
    positions = np.asarray(atoms.positions, dtype=np.float64)
    numbers = np.asarray(atoms.numbers, dtype=np.int64)

    from .probe import probe_tail_radius_A

    tail_A = kw.get("tail_A")
    if tail_A is None:
        tail_A = probe_tail_radius_A(optics)
    sides = check_coverage(positions[:, :2], fov, origin, tail_A)
    if sides:
        message = (
            f"The atoms do not extend {tail_A:g} Å (the probe tail) past the field of view on "
            f"the {', '.join(sides)} side(s): the image edges there will be too dark."
        )
        logger.warning(message)
        warnings.warn(message, CoverageWarning, stacklevel=2)

    t0 = time.perf_counter()
    details: dict[str, Any]
    if method == "incoherent":
        from .incoherent import get_plan, render_incoherent

        opts = {k: kw.pop(k) for k in ("tail_A", "spread", "parametrization", "workers") if k in kw}
        if kw:
            raise ValueError(f"Unknown option(s) for the incoherent method: {sorted(kw)}.")
        if progress is not None:
            progress(0, 1)
        image = render_incoherent(
            positions[:, :2], numbers, optics, float(sampling_A), shape, origin, **opts
        )
        plan = get_plan(
            optics, float(sampling_A), shape, opts.get("tail_A"), opts.get("spread", "cubic")
        )
        details = {
            "cross_sections": cross_section_model(
                numbers, optics, opts.get("parametrization", "kirkland")
            ),
            "tail_A": plan.tail_A,
            "spread": plan.spread,
            "oversample": plan.oversample,
            "padded_shape": list(plan.padded_shape),
        }
        if progress is not None:
            progress(1, 1)
    else:
        from .multislice import simulate_multislice

        image, details = simulate_multislice(
            atoms, optics, float(sampling_A), shape, origin, progress=progress, **kw
        )
    elapsed = time.perf_counter() - t0

    from stackview import __version__

    info = {str(k): _jsonable(v) for k, v in dict(getattr(atoms, "info", {})).items()}
    metadata: dict[str, Any] = {
        "method": method,
        "sampling_A": float(sampling_A),
        "fov_A": [float(fov[0]), float(fov[1])],
        "origin_A": [float(origin[0]), float(origin[1])],
        "shape": [int(shape[0]), int(shape[1])],
        "pixel_convention": PIXEL_CONVENTION,
        "units": "fraction of probe current on the ADF detector",
        "optics": optics.to_dict(),
        "n_atoms": int(len(atoms)),
        "structure_info": info,
        "method_details": details,
        "elapsed_s": float(elapsed),
        "stackview_version": __version__,
    }
    logger.info("%s simulation %s px at %.4g Å/px took %.3f s", method, shape, sampling_A, elapsed)
    return SimulatedImage(
        image=np.ascontiguousarray(image, dtype=np.float32),
        sampling_A=float(sampling_A),
        optics=optics,
        method=method,
        metadata=metadata,
        origin_A=origin,
    )

"""ADF-STEM image simulation: a fast incoherent simulator and abTEM multislice, one interface.

``simulate(atoms, optics, sampling_A, fov_A, origin_A, method="incoherent" | "multislice")``
returns a :class:`SimulatedImage` (float32 image, rows along +y, pixel (i, j) at the probe
position ``origin + ((j + 0.5) s, (i + 0.5) s)``, plus metadata). :class:`Optics` holds the
imaging conditions, :data:`PRESETS` the paper's ReS2 (300 kV) and MoS2 (60 kV) ones, and
:func:`render_incoherent_batch` renders many patches at once for datasets.

This package must not import Qt; abTEM (slow to import) is imported only inside the
multislice functions, so ``import stackview.simulation`` stays fast.
"""

from .api import METHODS, CoverageWarning, SimulatedImage, check_coverage, simulate
from .cross_sections import adf_cross_section_A2, adf_cross_sections
from .grid import image_shape, pixel_centers_A
from .incoherent import render_incoherent, render_incoherent_batch
from .optics import PRESETS, Optics, electron_wavelength_A, optics_text, resolve_optics
from .probe import probe_intensity, probe_tail_radius_A

__all__ = [
    "METHODS",
    "PRESETS",
    "optics_text",
    "resolve_optics",
    "CoverageWarning",
    "Optics",
    "SimulatedImage",
    "adf_cross_section_A2",
    "adf_cross_sections",
    "check_coverage",
    "electron_wavelength_A",
    "image_shape",
    "pixel_centers_A",
    "probe_intensity",
    "probe_tail_radius_A",
    "render_incoherent",
    "render_incoherent_batch",
    "simulate",
]

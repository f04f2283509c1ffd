"""The PEL beside an analysis: the slips of a result, the landscape for its model, and the
analysis figure redrawn with the PEL scatter panel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stackview.errors import UsageError
from stackview.materials import get_material
from stackview.pel.files import load_landscape
from stackview.pel.landscape import Landscape


def result_family(result) -> str | None:
    """The stacking family whose landscape an analysis belongs on: its windows' majority for
    a model of both families, else None (the default, parallel)."""
    if tuple(result.smap.names) == ("Da_A", "Db_A", "family"):
        return (result.statistics or {}).get("majority_family") or "parallel"
    return None


def slips_from_result(result) -> np.ndarray:
    """Slip labels (Å, rows ``(Da, Db)``) of every window of an analysis result (for a model
    of both stacking families: the windows of the majority family, :func:`result_family`)."""
    smap = result.smap
    names = tuple(smap.names)
    if names not in (("Da_A", "Db_A"), ("Da_A", "Db_A", "family")):
        raise UsageError("the PEL overlay needs a bilayer slip analysis (Da, Db), "
                         f"not {', '.join(smap.names)}")
    pts = np.asarray(smap.points)
    d = pts[:, 2:4]
    keep = np.all(np.isfinite(d), axis=1)
    family = result_family(result)
    if family is not None:
        keep &= (pts[:, 4] >= 0.5) == (family == "antiparallel")
    return d[keep]


def landscape_for_bundle(source, bundle, family: str | None = None) -> Landscape:
    """The landscape for an analysis with ``bundle`` (checked up front: a bilayer slip model).

    ``source`` and ``family`` as in :func:`load_landscape`; the material is the model's.
    """
    card = bundle.card
    if card.task != "slip" or int(card.layers) != 2:
        raise UsageError(f"--pel needs a bilayer slip model, not the {card.layers}-layer "
                         f"{card.task} model {card.name}")
    landscape = load_landscape(source, card.material, family)
    if landscape.material.name != get_material(card.material).name:
        raise UsageError(f"the landscape is for {landscape.material.name}, but the model is for "
                         f"{card.material}")
    return landscape


def add_pel_to_figure(result, folder: str | os.PathLike, source: Landscape | str = "auto",
                      figure_format: str = "png", family: str | None = None) -> Path:
    """Redraw an analysis figure (written by ``write_results``) with a PEL scatter panel.

    ``source``: a :class:`Landscape`, or as in :func:`load_landscape` (the model's material,
    the stacking ``family``: default parallel).
    """
    from stackview.analysis.export import write_figure
    from stackview.pel.plot import pel_panel

    slips = slips_from_result(result)
    family = family or result_family(result)
    landscape = (source if isinstance(source, Landscape)
                 else load_landscape(source, result.bundle.card.material, family))
    folder = Path(folder)
    return write_figure(folder / f"figure.{figure_format}", result.image,
                        result.calibration.pixel_size_nm, result.smap, result.field,
                        result.interface, title=folder.name, pel=pel_panel(landscape, slips),
                        reliable=result.reliable,
                        reliability_reason=result.reliability_reason)


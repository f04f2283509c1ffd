"""Drawing a PEL: heat map over (Da, Db) with minima and an analysis's slips (matplotlib, no Qt).

The heat map is drawn in label coordinates — Da (Å along â) horizontally, Db (Å along b̂)
vertically — over one whole cell, so the picture is a rectangle even for an oblique cell. The
canonical label domain (``Db ≤ |b|/2``) lies below the dashed line. A slip label stands for the
stack with slip D and for its layer swap −D (an image cannot tell them apart): both are drawn,
D filled and −D hollow. The GUI can draw the same data from :meth:`Landscape.grid_arrays`,
:func:`plot_data`; the CLI figure and ``stackview analyze
--pel`` use :func:`plot_landscape`. Must not import Qt.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from stackview.errors import UsageError
from stackview.io.atomic import atomic_path
from stackview.pel.landscape import Landscape


def scatter_points(landscape: Landscape, slips_A) -> tuple[np.ndarray, np.ndarray]:
    """Slips and their layer-swap images folded into the plotted cell ``[0,|a|)×[0,|b|)``.

    Returns
    -------
    (direct, swapped)
        Arrays (n, 2) of (Da, Db) in Å: the slips D and the equivalents −D.
    """
    d = np.asarray(slips_A, dtype=float).reshape(-1, 2)
    d = d[np.all(np.isfinite(d), axis=1)]
    lengths = np.array([landscape.material.a_A, landscape.material.b_A])
    return d % lengths, (-d) % lengths


def distinct_minima(landscape: Landscape, tol_meV: float = 1e-6) -> np.ndarray:
    """Local minima (rows Da_A, Db_A, energy_meV) with plateau points merged to one each."""
    rows = landscape.minima(tol_meV)
    lengths = np.array([landscape.material.a_A, landscape.material.b_A])
    step = lengths / np.array(landscape.shape)
    kept: list[np.ndarray] = []
    for r in rows:
        near = False
        for k in kept:
            delta = (r[:2] - k[:2]) / lengths
            delta -= np.round(delta)
            if np.all(np.abs(delta * lengths) <= step * 1.01) and abs(r[2] - k[2]) <= 1e-3:
                near = True
                break
        if not near:
            kept.append(r)
    return np.array(kept).reshape(-1, 3)


def plot_data(landscape: Landscape, slips_A=None) -> dict:
    """Everything :func:`plot_landscape` draws, as arrays (for the GUI's own widgets).

    Keys: ``Da_A``, ``Db_A``, ``energy_meV`` (closed grids over the whole cell, indexing
    ``[i, j]``), ``minima`` (rows Da_A, Db_A, energy_meV), ``slips_A`` and ``swapped_A``
    (scatter points, see :func:`scatter_points`), ``canonical_Db_max_A`` (the dashed line),
    ``cell_A`` (|a|, |b|).
    """
    da, db, e = landscape.grid_arrays(closed=True)
    if slips_A is None:
        direct = swapped = np.zeros((0, 2))
    else:
        direct, swapped = scatter_points(landscape, slips_A)
    a, b = landscape.material.a_A, landscape.material.b_A
    return {"Da_A": da, "Db_A": db, "energy_meV": e, "minima": distinct_minima(landscape),
            "slips_A": direct, "swapped_A": swapped, "canonical_Db_max_A": b / 2,
            "cell_A": (a, b)}


def plot_landscape(ax, landscape: Landscape, slips_A=None, cmap: str = "viridis",
                   colorbar: bool = True, title: str | None = None):
    """Draw the heat map on a matplotlib axis; returns the mesh artist.

    Parameters
    ----------
    ax
        A matplotlib ``Axes``.
    landscape
        The PEL.
    slips_A
        Optional slips (n, 2) in Å (e.g. every window of an analysis) scattered on top.
    colorbar
        Add a colour bar (meV per cell) to the axis' figure.
    """
    da, db, e = landscape.grid_arrays(closed=True)
    mesh = ax.pcolormesh(da, db, e, cmap=cmap, shading="gouraud", rasterized=True)
    a, b = landscape.material.a_A, landscape.material.b_A
    ax.contour(da, db, e, levels=8, colors="white", linewidths=0.4, alpha=0.5)
    ax.axhline(b / 2, color="white", ls="--", lw=0.8, alpha=0.8)
    mins = distinct_minima(landscape)
    if len(mins):
        shown = [mins[:, :2]]  # with their periodic copies on the far edges of the cell
        for axis, length in ((0, a), (1, b)):
            edge = np.isclose(mins[:, axis], 0.0, atol=1e-9)
            copy = mins[edge, :2].copy()
            copy[:, axis] = length
            shown.append(copy)
        both = np.isclose(mins[:, 0], 0.0, atol=1e-9) & np.isclose(mins[:, 1], 0.0, atol=1e-9)
        shown.append(np.tile([a, b], (int(both.sum()), 1)))
        pts = np.vstack(shown)
        ax.plot(pts[:, 0], pts[:, 1], "x", color="white", ms=8, mew=2, label="minima",
                clip_on=False)
    if slips_A is not None:
        direct, swapped = scatter_points(landscape, slips_A)
        if len(direct):
            alpha = float(np.clip(30 / len(direct), 0.15, 0.9))
            ax.scatter(direct[:, 0], direct[:, 1], s=10, c="red", alpha=alpha, lw=0,
                       label=f"slips D ({len(direct)})")
            ax.scatter(swapped[:, 0], swapped[:, 1], s=12, facecolors="none",
                       edgecolors="red", alpha=alpha, lw=0.7, label="layer swap −D")
    ax.set_xlim(0, a)
    ax.set_ylim(0, b)
    ax.set_aspect("equal")
    ax.set_xlabel("Da (Å)")
    ax.set_ylabel("Db (Å)")
    prov = landscape.provenance or {}
    calc = (prov.get("calculator") or {}).get("name", "")
    ax.set_title(title or f"{landscape.material.name} PEL" + (f" ({calc})" if calc else ""))
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, label="E (meV/cell)")
    if len(mins) or slips_A is not None:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return mesh


def pel_panel(landscape: Landscape, slips_A=None):
    """A callable ``panel(ax)`` drawing the PEL with slips, for ``export.write_figure(pel=)``."""

    def panel(ax) -> None:
        plot_landscape(ax, landscape, slips_A, title=f"slips on the {landscape.material.name} "
                                                     "PEL")

    return panel


def write_landscape_figure(path: str | os.PathLike, landscape: Landscape, slips_A=None) -> Path:
    """Write the heat map (PNG or SVG, by suffix) atomically; returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise UsageError(f"the figure must be a .png, .svg or .pdf file, not {path.name}")
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    plot_landscape(ax, landscape, slips_A)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=fmt)
    plt.close(fig)
    return path


def read_slips_csv(path: str | os.PathLike) -> np.ndarray:
    """Slips (n, 2) in Å from an analysis ``map.csv`` (columns ``Da_A``, ``Db_A``)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"the slip file {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"Da_A", "Db_A"} <= set(reader.fieldnames):
            raise UsageError(f"{path.name} needs columns Da_A and Db_A (an analysis map.csv)")
        try:
            rows = [(float(r["Da_A"]), float(r["Db_A"])) for r in reader]
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{path.name} has a slip that is not a number") from exc
    return np.array(rows, dtype=float).reshape(-1, 2)

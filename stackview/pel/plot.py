"""Drawing a PEL: heat map over (Da, Db) with minima and an analysis's slips (matplotlib, no Qt).

The heat map is drawn in label coordinates — Da (Å along â) horizontally, Db (Å along b̂)
vertically — over one whole cell, so the picture is a rectangle even for an oblique cell. The
canonical label domain is outlined dashed: the family's triangle of
:func:`stackview.core.stacking.chamber_frac` for hexagonal TMDs, else ``Db ≤ |b|/2`` (below the
dashed line). The named stacking classes of the landscape's family (AA, AB, BA; AA′, AB′, A′B)
are marked and named at their slips (:func:`stackview.pel.landscape.class_marks`). In the
parallel family a slip label stands for the stack with slip D and for its layer swap −D (an
image cannot tell them apart): both are drawn, D filled and −D hollow; in the antiparallel
family a swap keeps the label, so only D is drawn. The GUI can draw the same data from
:meth:`Landscape.grid_arrays`,
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
from stackview.pel.landscape import Landscape, class_marks, prime


def scatter_points(landscape: Landscape, slips_A) -> tuple[np.ndarray, np.ndarray]:
    """Slips and their layer-swap images folded into the plotted cell ``[0,|a|)×[0,|b|)``.

    Returns
    -------
    (direct, swapped)
        Arrays (n, 2) of (Da, Db) in Å: the slips D and the equivalents −D (none in the
        antiparallel family, where a swap of the layers keeps the label D).
    """
    d = np.asarray(slips_A, dtype=float).reshape(-1, 2)
    d = d[np.all(np.isfinite(d), axis=1)]
    lengths = np.array([landscape.material.a_A, landscape.material.b_A])
    if landscape.family == "antiparallel":
        return d % lengths, np.zeros((0, 2))
    return d % lengths, (-d) % lengths


def class_points(landscape: Landscape) -> list[tuple[str, np.ndarray]]:
    """The stacking classes of the landscape's family as ``(name, points)``: the class's slip
    (Da, Db) in Å in the plotted cell (the first row of ``points``, where the name is written)
    with its periodic copies on the cell's far edges; names with typographic primes. Empty for
    materials without class names."""
    a, b = landscape.material.a_A, landscape.material.b_A
    out = []
    for name, fa, fb in class_marks(landscape.material, landscape.family):
        xs = [fa * a] + ([a] if np.isclose(fa, 0.0) else [])
        ys = [fb * b] + ([b] if np.isclose(fb, 0.0) else [])
        out.append((prime(name), np.array([(x, y) for x in xs for y in ys])))
    return out


def domain_outline(landscape: Landscape) -> np.ndarray:
    """The canonical label domain's outline (closed polygon, rows (Da, Db) in Å): the family's
    triangle for materials with named classes, else the strip ``Db ≤ |b|/2``."""
    from stackview.core.stacking import chamber_frac

    a, b = landscape.material.a_A, landscape.material.b_A
    tri = chamber_frac(landscape.material, landscape.family)
    if tri is None:
        return np.array([[0.0, b / 2], [a, b / 2]])
    return np.vstack([tri, tri[:1]]) * [a, b]


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
    (scatter points, see :func:`scatter_points`), ``canonical_Db_max_A`` (the strip of a
    domain ``Db ≤ |b|/2``), ``domain_A`` (the dashed outline, :func:`domain_outline`),
    ``family``, ``classes`` (:func:`class_points`), ``cell_A`` (|a|, |b|).
    """
    da, db, e = landscape.grid_arrays(closed=True)
    if slips_A is None:
        direct = swapped = np.zeros((0, 2))
    else:
        direct, swapped = scatter_points(landscape, slips_A)
    a, b = landscape.material.a_A, landscape.material.b_A
    return {"Da_A": da, "Db_A": db, "energy_meV": e, "minima": distinct_minima(landscape),
            "slips_A": direct, "swapped_A": swapped, "canonical_Db_max_A": b / 2,
            "domain_A": domain_outline(landscape), "family": landscape.family,
            "classes": class_points(landscape), "cell_A": (a, b)}


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
    outline = domain_outline(landscape)
    ax.plot(outline[:, 0], outline[:, 1], color="white", ls="--", lw=0.8, alpha=0.8,
            label="_canonical domain")
    for name, pts in class_points(landscape):
        ax.plot(pts[:, 0], pts[:, 1], "o", ms=6, mfc="none", mec="black", mew=1.2,
                label=f"_class {name}", clip_on=False)
        ax.annotate(name, tuple(pts[0]), xytext=(4, 4), textcoords="offset points", fontsize=8,
                    color="black", clip_on=False,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.7})
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
            if len(swapped):
                ax.scatter(swapped[:, 0], swapped[:, 1], s=12, facecolors="none",
                           edgecolors="red", alpha=alpha, lw=0.7, label="layer swap −D")
    ax.set_xlim(0, a)
    ax.set_ylim(0, b)
    ax.set_aspect("equal")
    ax.set_xlabel("Da (Å)")
    ax.set_ylabel("Db (Å)")
    prov = landscape.provenance or {}
    calc = (prov.get("calculator") or {}).get("name", "")
    family = "" if landscape.family == "parallel" and not class_marks(
        landscape.material, "parallel") else f", {landscape.family}"
    ax.set_title(title or f"{landscape.material.name} PEL{family}"
                 + (f" ({calc})" if calc else ""))
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, fraction=0.046, pad=0.04, label="E (meV/cell)")
    if len(mins) or slips_A is not None:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return mesh


def pel_panel(landscape: Landscape, slips_A=None):
    """A callable ``panel(ax)`` drawing the PEL with slips, for ``export.write_figure(pel=)``."""

    def panel(ax) -> None:
        family = f" ({landscape.family})" if class_marks(landscape.material) else ""
        plot_landscape(ax, landscape, slips_A,
                       title=f"slips on the {landscape.material.name} PEL{family}")

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

"""Files an analysis writes: map.csv, calibrated map TIFFs, a PNG/SVG figure, summary.json.

Every writer is atomic (temporary file + rename). matplotlib runs with the Agg backend, so this
works without a display. No Qt here.
"""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import numpy as np

from stackview.analysis.trust import POOR_WINDOW_NCC
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.io.tiff import write_calibrated_tiff

#: the longest side of the image the figure draws; larger images are block-averaged first. A
#: panel is ~500 px wide at the figure's dpi, so 1024 px loses nothing visible, while
#: matplotlib spends ~15 bytes per drawn pixel: an 8504² image took 25 s and 4.1 GB drawn at
#: full resolution, 1.8 s and 57 MB block-averaged to 945² (2048 px: 2.1 s, 177 MB)
FIGURE_MAX_PX = 1024


def write_map_csv(path: Path, smap, fit=None) -> Path:
    """One row per evaluated window: x_nm, y_nm, labels, uncertainty, level and, when the
    windows were scored, ``ncc`` (their re-simulation NCC; empty where not scored); for twist
    maps with bounds, ``theta_bound`` ("<3.0" or ">57.0" where the window gives a bound, and the
    angle is then left empty). With a physics fit (:class:`stackview.fit.FitResult`, one row
    per window): ``fit_<label>`` and ``fit_sigma_<label>``, ``fit_ncc``, ``fit_chi2_red``,
    ``fit_moved_A`` (``fit_moved_deg`` for twist; from the network's reading) and
    ``fit_dose_per_px``. For models that read the stacking family (a ``family`` column: the
    probability of the antiparallel family): ``stacking_family``, ``stacking`` (the class name,
    :mod:`stackview.core.stacking`; ``intermediate`` farther than 0.5 Å from every class) and
    ``stacking_distance_A``."""
    unit = "deg" if smap.names == ("theta_deg",) else "A"
    header = ["x_nm", "y_nm", *smap.names, f"uncertainty_{unit}", "level"]
    stacking = getattr(smap, "stacking", None)
    if stacking is not None:
        header += ["stacking_family", "stacking", "stacking_distance_A"]
    ncc = getattr(smap, "ncc_points", None)
    if ncc is not None:
        ncc = np.asarray(ncc, dtype=float).ravel()
        if len(ncc) != len(smap.points):
            raise ValueError(f"ncc_points has {len(ncc)} values for {len(smap.points)} windows")
        header.append("ncc")
    bounds = getattr(smap, "bounds", None)
    if bounds is not None:
        header.append("theta_bound")
    if fit is not None:
        if len(fit) != len(smap.points):
            raise ValueError(f"the fit has {len(fit)} windows for {len(smap.points)} rows")
        header += ([f"fit_{n}" for n in smap.names] + [f"fit_sigma_{n}" for n in smap.names]
                   + ["fit_ncc", "fit_chi2_red", f"fit_moved_{unit}", "fit_dose_per_px"])
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for k, row in enumerate(smap.points):
            cells = [f"{row[0]:.4f}", f"{row[1]:.4f}",
                     *(f"{v:.4f}" if np.isfinite(v) else "" for v in row[2:-1]), int(row[-1])]
            if stacking is not None:
                fam, names, dist = stacking
                cells += [fam[k], names[k], _cell(dist[k], 4)]
            if ncc is not None:
                cells.append(f"{ncc[k]:.4f}" if np.isfinite(ncc[k]) else "")
            if bounds is not None:
                cells.append(bounds.label(int(bounds.side_points[k])))
            if fit is not None:
                cells += [_cell(v, 4) for v in fit.labels[k]] + [_cell(v, 5) for v in
                                                                 fit.sigma[k]]
                cells += [_cell(fit.ncc[k], 4), _cell(fit.chi2_red[k], 3),
                          _cell(fit.moved_A[k], 4), _cell(fit.dose_per_px[k], 1)]
            w.writerow(cells)
    return path


def _cell(value, digits: int) -> str:
    return f"{value:.{digits}f}" if np.isfinite(value) else ""


def write_map_tiffs(folder: Path, smap) -> list[Path]:
    """Each label map, the uncertainty and (when scored) the re-simulation NCC as float32 TIFFs
    with the stride as pixel size."""
    out = []
    for k, name in enumerate(smap.names):
        out.append(write_calibrated_tiff(folder / f"map_{name}.tif", smap.values[..., k],
                                         smap.stride_nm))
    out.append(write_calibrated_tiff(folder / "map_uncertainty.tif", smap.uncertainty,
                                     smap.stride_nm))
    if getattr(smap, "ncc", None) is not None:
        out.append(write_calibrated_tiff(folder / "map_ncc.tif", smap.ncc, smap.stride_nm))
    return out


def write_summary(path: Path, summary: dict) -> Path:
    write_text_atomic(path, json.dumps(summary, indent=2, ensure_ascii=False, default=_json) + "\n")
    return path


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def _scale_bar(ax, width_nm: float, height_nm: float) -> None:
    target = width_nm / 5
    nice = [0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    length = max([n for n in nice if n <= target] or [nice[0]])
    x0 = width_nm * 0.05
    y0 = height_nm * 0.93
    ax.plot([x0, x0 + length], [y0, y0], color="white", lw=3, solid_capstyle="butt")
    ax.text(x0 + length / 2, y0 - height_nm * 0.02, f"{length:g} nm", color="white",
            ha="center", va="bottom", fontsize=9)


def display_copy(image: np.ndarray, max_px: int | None = None) -> tuple[np.ndarray, int]:
    """A block-averaged copy of ``image`` with at most ``max_px`` pixels a side, and the block
    side ``f`` (1: the image itself, as float32).

    Block (i, j) averages the image's pixels [i·f, (i+1)·f) × [j·f, (j+1)·f) (the last row and
    column of blocks average what is left), so drawn as f × f source pixels it sits exactly
    where its pixels are. The image is read in bands of block rows: the extra memory is a few
    bands plus the copy, not a full-resolution float64 temporary.
    """
    img = np.asarray(image)
    ny, nx = img.shape
    f = max(1, int(np.ceil(max(ny, nx) / (max_px or FIGURE_MAX_PX))))
    if f == 1:
        return img.astype(np.float32, copy=False), 1
    by, bx = -(-ny // f), -(-nx // f)
    cols = np.arange(0, nx, f)
    col_counts = np.diff(np.append(cols, nx)).astype(np.float64)
    out = np.empty((by, bx), dtype=np.float32)
    band = max(1, (8 << 20) // (8 * nx * f))  # block rows per band: ~8 MB of float64 sums
    for b0 in range(0, by, band):
        b1 = min(by, b0 + band)
        rows = img[b0 * f:min(ny, b1 * f)]
        sums = np.add.reduceat(rows, cols, axis=1, dtype=np.float64)  # (rows, bx)
        starts = np.arange(0, len(rows), f)
        sums = np.add.reduceat(sums, starts, axis=0)  # (b1 - b0, bx)
        row_counts = np.diff(np.append(starts, len(rows))).astype(np.float64)
        out[b0:b1] = sums / row_counts[:, None] / col_counts[None, :]
    return out, f


def _mark_unreliable(fig, axes, reason: str, matplotlib) -> float:
    """A red banner across the whole top of the figure and red frames on the given panels;
    returns the banner's height as a fraction of the figure's."""
    width_in, height_in = fig.get_size_inches()
    text = "UNRELIABLE — " + (reason or "the analysis did not say why")
    # wrap to the figure's width (about 9 characters per inch at 12 pt bold)
    lines = textwrap.wrap(text, width=max(30, int(width_in * 9)))
    band = (0.22 * len(lines) + 0.16) / height_in  # ~0.22 in a line of 12 pt, plus a margin
    fig.patches.append(matplotlib.patches.Rectangle((0, 1 - band), 1, band, facecolor="#c62828",
                                                    edgecolor="none", transform=fig.transFigure,
                                                    figure=fig))
    fig.text(0.5, 1 - band / 2, "\n".join(lines), ha="center", va="center", color="white",
             fontsize=12, fontweight="bold")
    for ax in axes:
        for spine in ax.spines.values():
            spine.set_edgecolor("#d50000")
            spine.set_linewidth(4)
    return band


def _hatch_whole(ax, extent, matplotlib) -> None:
    """Red tint and diagonal hatching over a map panel of an unreliable result."""
    x0, x1, y1, y0 = extent
    ax.add_patch(matplotlib.patches.Rectangle((x0, y0), x1 - x0, y1 - y0,
                                              facecolor=(0.85, 0.0, 0.0, 0.12),
                                              hatch="//", ec=(0.85, 0.0, 0.0, 0.8), lw=0,
                                              zorder=5))


def poor_window_runs(smap, threshold: float = POOR_WINDOW_NCC) -> list[tuple]:
    """Rectangles (x0, y0, width, height) in nm covering the grid cells whose re-simulation NCC
    is below ``threshold``, one per horizontal run of such cells (fewer patches to hatch).

    The threshold is the library's: such a window does not look like the stack it was read
    as, and the reliability judgement counts the same windows."""
    ncc = getattr(smap, "ncc", None)
    if ncc is None:
        return []
    ncc = np.asarray(ncc, dtype=float)
    x, y = np.asarray(smap.x_nm, dtype=float), np.asarray(smap.y_nm, dtype=float)
    dx = float(np.diff(x).mean()) if len(x) > 1 else float(smap.stride_nm)
    dy = float(np.diff(y).mean()) if len(y) > 1 else float(smap.stride_nm)
    poor = np.isfinite(ncc) & (ncc < threshold)
    runs = []
    for j in np.flatnonzero(poor.any(axis=1)):
        row = np.concatenate([[False], poor[j], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(row))
        for i0, i1 in zip(edges[::2], edges[1::2], strict=True):
            runs.append((x[i0] - dx / 2, y[j] - dy / 2, dx * (i1 - i0), dy))
    return runs


def _hatch_poor_windows(ax, runs, matplotlib) -> None:
    from matplotlib.collections import PatchCollection

    patches = [matplotlib.patches.Rectangle((x0, y0), w, h) for x0, y0, w, h in runs]
    # grey the cells (their values are still there, but faded) and hatch them
    ax.add_collection(PatchCollection(patches, facecolor=(0.5, 0.5, 0.5, 0.6),
                                      edgecolor=(0.15, 0.15, 0.15, 0.9), hatch="xx", lw=0,
                                      zorder=4))


def write_figure(path: Path, image: np.ndarray, pixel_size_nm: float, smap, field=None,
                 interface=None, title: str = "", pel=None, reliable: bool = True,
                 reliability_reason: str = "") -> Path:
    """Image with the window size, label maps with colour bars, slip arrows (PNG or SVG).

    An unreliable result gets a red "UNRELIABLE — reason" banner and red, hatched map panels;
    windows whose re-simulation NCC is poor (``smap.ncc`` < :data:`POOR_WINDOW_NCC`) are greyed
    and hatched. Images larger than :data:`FIGURE_MAX_PX` are drawn block-averaged (the nm
    extent stays exact).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    # a thicker hatch than the default 1 px, which vanishes under a colour map (the patches
    # and the renderer read it, so it holds from building to saving)
    with plt.rc_context({"hatch.linewidth": 1.5}):
        fig = build_figure(image, pixel_size_nm, smap, field, interface, title, pel, reliable,
                           reliability_reason)
        try:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
        finally:
            plt.close(fig)
    return path


#: one colour per stacking class (figure and window), the parallel ones blue-green, the
#: antiparallel ones warm, intermediate grey
CLASS_COLOURS = {"AA": "#1b9e77", "AB/BA": "#377eb8", "AA'": "#e41a1c", "AB'": "#ff7f00",
                 "A'B": "#984ea3", "intermediate": "#bdbdbd"}


def _class_map(ax, stacking, map_extent, interface, matplotlib) -> None:
    """The stacking classes as a categorical map with a legend of the classes present."""
    classes = [c for c in stacking.classes if np.any(stacking.grid == c)]
    code = np.full(stacking.grid.shape, np.nan)
    for i, c in enumerate(classes):
        code[stacking.grid == c] = i
    colours = [CLASS_COLOURS.get(c, "#000000") for c in classes] or ["#000000"]
    ax.imshow(code, cmap=matplotlib.colors.ListedColormap(colours), vmin=-0.5,
              vmax=len(colours) - 0.5, extent=map_extent, alpha=0.85, interpolation="nearest")
    handles = [matplotlib.patches.Patch(color=CLASS_COLOURS.get(c, "#000000"),
                                        label=c.replace("'", "\u2032")) for c in classes]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.8)
    if interface is not None and len(interface):
        ax.plot(interface[:, 0], interface[:, 1], "--", color="black", lw=1.5)
    ax.set_title("stacking class")


def build_figure(image: np.ndarray, pixel_size_nm: float, smap, field=None, interface=None,
                 title: str = "", pel=None, reliable: bool = True, reliability_reason: str = ""):
    """The matplotlib figure :func:`write_figure` saves (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ny, nx = np.shape(image)
    w_nm, h_nm = nx * pixel_size_nm, ny * pixel_size_nm
    shown, f = display_copy(image)
    # each block covers f source pixels; the last partial block reaches past the image edge
    # and is clipped by the axis limits, so every block sits where its pixels are
    extent = (0, shown.shape[1] * f * pixel_size_nm, shown.shape[0] * f * pixel_size_nm, 0)
    n = len(smap.names)
    panels = 1 + n + (1 if field is not None else 0) + (1 if pel is not None else 0)
    cols = min(panels, 3)
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False)
    axes = axes.ravel()
    lo, hi = np.percentile(shown, [0.5, 99.5])
    ax = axes[0]
    ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi, extent=extent)
    ax.set_xlim(0, w_nm)
    ax.set_ylim(h_nm, 0)
    win = smap.window_nm
    ax.add_patch(matplotlib.patches.Rectangle((w_nm * 0.05, h_nm * 0.05), win, win, fill=False,
                                              ec="yellow", lw=1.5))
    ax.text(w_nm * 0.05, h_nm * 0.05 + win, " window", color="yellow", va="top", fontsize=8)
    _scale_bar(ax, w_nm, h_nm)
    ax.set_title(title or "image")
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y (nm)")
    dx = smap.stride_nm / 2
    map_extent = (smap.x_nm[0] - dx, smap.x_nm[-1] + dx, smap.y_nm[-1] + dx, smap.y_nm[0] - dx)
    runs = poor_window_runs(smap)
    ncc = getattr(smap, "ncc", None)
    scored = np.asarray(ncc, dtype=float)[np.isfinite(ncc)] if ncc is not None else np.zeros(0)
    n_scored, n_poor = len(scored), int((scored < POOR_WINDOW_NCC).sum())
    poor_label = (f"hatched grey: re-simulation NCC < {POOR_WINDOW_NCC:g} "
                  f"({n_poor} of {n_scored} windows)" if n_poor else "")
    map_axes = []

    def finish_map_panel(ax) -> None:
        if runs:
            _hatch_poor_windows(ax, runs, matplotlib)
        if not reliable:
            _hatch_whole(ax, (0, w_nm, h_nm, 0), matplotlib)
        ax.set_xlim(0, w_nm)
        ax.set_ylim(h_nm, 0)
        ax.set_xlabel("x (nm)" + (f"\n{poor_label}" if poor_label else ""))
        map_axes.append(ax)

    for k, name in enumerate(smap.names):
        ax = axes[1 + k]
        ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi, extent=extent)
        stacking = getattr(smap, "stacking", None)
        if name == "family" and stacking is not None:
            _class_map(ax, stacking, map_extent, interface, matplotlib)
            finish_map_panel(ax)
            continue
        im = ax.imshow(smap.values[..., k], cmap="viridis", extent=map_extent, alpha=0.85,
                       interpolation="nearest")
        unit = "°" if name == "theta_deg" else "Å"
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"{name.split('_')[0]} ({unit})")
        bounds = getattr(smap, "bounds", None)
        if name == "theta_deg" and bounds is not None and (bounds.below or bounds.above):
            # the windows that give a bound, not an angle: two flat shades with their bound
            shade = np.where(bounds.side < 0, 0.0, np.where(bounds.side > 0, 1.0, np.nan))
            ax.imshow(shade, cmap=matplotlib.colors.ListedColormap(["#d9d9d9", "#636363"]),
                      vmin=0, vmax=1, extent=map_extent, alpha=0.9, interpolation="nearest")
            ax.text(0.01, 0.01, f"light: θ < {bounds.low_deg:.1f}°, dark: θ > "
                    f"{bounds.high_deg:.1f}° (beyond a {bounds.window_nm:.2f} nm window)",
                    transform=ax.transAxes, fontsize=7, color="black", va="bottom",
                    bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
        if interface is not None and len(interface):
            ax.plot(interface[:, 0], interface[:, 1], "--", color="orange", lw=1.5)
        ax.set_title(f"{name.split('_')[0]} map")
        finish_map_panel(ax)
    k = 1 + n
    if field is not None:
        ax = axes[k]
        k += 1
        ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi, extent=extent)
        xx, yy = np.meshgrid(smap.x_nm, smap.y_nm)
        # all-zero deviations (one window, a perfectly uniform map) make matplotlib's arrow
        # autoscale divide by zero: draw them at a fixed scale instead
        still = not np.any(np.nan_to_num(field.magnitude_A) > 0)
        q = ax.quiver(xx, yy, field.dx_A, field.dy_A, field.magnitude_A, cmap="plasma",
                      angles="xy", pivot="middle", **({"scale": 1.0} if still else {}))
        fig.colorbar(q, ax=ax, fraction=0.046, pad=0.04, label="|Δd| (Å)")
        rx0, ry0, rx1, ry1 = field.reference_roi_nm
        ax.add_patch(matplotlib.patches.Rectangle((rx0, ry0), rx1 - rx0, ry1 - ry0, fill=False,
                                                  ec="white", lw=1))
        ax.set_title("slip deviation Δd from the reference (box)" if not field.family else
                     f"Δd from the {field.family} reference (box); other family: none")
        finish_map_panel(ax)
    if pel is not None:
        pel(axes[k])
        k += 1
    for ax in axes[k:]:
        ax.axis("off")
    if reliable:
        fig.tight_layout()
    else:
        band = _mark_unreliable(fig, [axes[0], *map_axes], reliability_reason, matplotlib)
        fig.tight_layout(rect=(0, 0, 1, 1 - band * 1.1))  # the panels below the banner
    return fig


def write_stats_csv(path: Path, rows: list[dict]) -> Path:
    """Folder statistics: one row per image (medians and IQRs of each label)."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path

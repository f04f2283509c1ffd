"""Files an analysis writes: map.csv, calibrated map TIFFs, a PNG/SVG figure, summary.json.

Every writer is atomic (temporary file + rename). matplotlib runs with the Agg backend, so this
works without a display. No Qt here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.io.tiff import write_calibrated_tiff


def write_map_csv(path: Path, smap) -> Path:
    """One row per evaluated window: x_nm, y_nm, labels, uncertainty, level."""
    unit = "deg" if smap.names == ("theta_deg",) else "A"
    header = ["x_nm", "y_nm", *smap.names, f"uncertainty_{unit}", "level"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in smap.points:
            w.writerow([f"{row[0]:.4f}", f"{row[1]:.4f}", *(f"{v:.4f}" for v in row[2:-1]),
                        int(row[-1])])
    return path


def write_map_tiffs(folder: Path, smap) -> list[Path]:
    """Each label map (and the uncertainty) as a float32 TIFF with the stride as pixel size."""
    out = []
    for k, name in enumerate(smap.names):
        out.append(write_calibrated_tiff(folder / f"map_{name}.tif", smap.values[..., k],
                                         smap.stride_nm))
    out.append(write_calibrated_tiff(folder / "map_uncertainty.tif", smap.uncertainty,
                                     smap.stride_nm))
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


def write_figure(path: Path, image: np.ndarray, pixel_size_nm: float, smap, field=None,
                 interface=None, title: str = "", pel=None, reliable: bool = True,
                 reliability_reason: str = "") -> Path:
    """Image with the window size, label maps with colour bars, slip arrows (PNG or SVG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ny, nx = image.shape
    w_nm, h_nm = nx * pixel_size_nm, ny * pixel_size_nm
    extent = (0, w_nm, h_nm, 0)
    n = len(smap.names)
    panels = 1 + n + (1 if field is not None else 0) + (1 if pel is not None else 0)
    cols = min(panels, 3)
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False)
    axes = axes.ravel()
    lo, hi = np.percentile(image, [0.5, 99.5])
    ax = axes[0]
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, extent=extent)
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
    for k, name in enumerate(smap.names):
        ax = axes[1 + k]
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, extent=extent)
        im = ax.imshow(smap.values[..., k], cmap="viridis", extent=map_extent, alpha=0.85,
                       interpolation="nearest")
        unit = "°" if name == "theta_deg" else "Å"
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"{name.split('_')[0]} ({unit})")
        if interface is not None and len(interface):
            ax.plot(interface[:, 0], interface[:, 1], "--", color="orange", lw=1.5)
        ax.set_xlim(0, w_nm)
        ax.set_ylim(h_nm, 0)
        ax.set_title(f"{name.split('_')[0]} map")
        ax.set_xlabel("x (nm)")
    k = 1 + n
    if field is not None:
        ax = axes[k]
        k += 1
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, extent=extent)
        xx, yy = np.meshgrid(smap.x_nm, smap.y_nm)
        q = ax.quiver(xx, yy, field.dx_A, field.dy_A, field.magnitude_A, cmap="plasma",
                      angles="xy", pivot="middle")
        fig.colorbar(q, ax=ax, fraction=0.046, pad=0.04, label="|Δd| (Å)")
        rx0, ry0, rx1, ry1 = field.reference_roi_nm
        ax.add_patch(matplotlib.patches.Rectangle((rx0, ry0), rx1 - rx0, ry1 - ry0, fill=False,
                                                  ec="white", lw=1))
        ax.set_xlim(0, w_nm)
        ax.set_ylim(h_nm, 0)
        ax.set_title("slip deviation Δd from the reference (box)")
        ax.set_xlabel("x (nm)")
    if pel is not None:
        pel(axes[k])
        k += 1
    for ax in axes[k:]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


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

"""Draw stackview's icon: ``stackview/resources/icons/stackview.svg`` and PNGs rendered by Qt.

The icon is two hexagonal atom lattices, the top one slipped against the bottom one (what
stackview measures), on a dark rounded square. The SVG is written from the geometry below and
every PNG is rendered from that SVG (QtSvg, offscreen), so the sizes never disagree. No art is
downloaded. Run from anywhere::

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

ICONS_DIR = Path(__file__).resolve().parents[1] / "stackview" / "resources" / "icons"
SIZES_PX = (16, 24, 32, 48, 64, 128, 256)
VIEW = 256
SPACING = 58.0  # lattice constant in icon units: few, large atoms stay readable at 32 px
TILE, TILE_RADIUS = (8.0, 248.0), 44.0
SLIP = (19.0, -11.0)  # the top layer's shift (a third of a cell, like a real stacking offset)


def lattice_pairs() -> list[tuple[float, float]]:
    """Bottom-layer sites of a hexagonal lattice whose atom and slipped partner both fit in
    the tile, centred in it."""
    a1 = (SPACING, 0.0)
    a2 = (SPACING / 2, SPACING * math.sqrt(3) / 2)
    sites = []
    for i in range(-6, 10):
        for j in range(-2, 8):
            x = i * a1[0] + j * a2[0]
            y = j * a2[1]
            sites.append((x, y))
    # centre the lattice (with its slipped partners) before cropping to the tile
    cx = (TILE[0] + TILE[1]) / 2 - SLIP[0] / 2
    cy = (TILE[0] + TILE[1]) / 2 - SLIP[1] / 2
    x0, y0 = min(sites, key=lambda p: math.hypot(p[0] - 2 * SPACING, p[1] - 2 * a2[1]))
    sites = [(x - x0 + cx, y - y0 + cy) for x, y in sites]
    kept = [(x, y) for x, y in sites
            if inside_tile(x, y, margin=18) and inside_tile(x + SLIP[0], y + SLIP[1], margin=15)]
    xs = [x for x, _ in kept] + [x + SLIP[0] for x, _ in kept]
    ys = [y for _, y in kept] + [y + SLIP[1] for _, y in kept]
    dx = (TILE[0] + TILE[1]) / 2 - (min(xs) + max(xs)) / 2
    dy = (TILE[0] + TILE[1]) / 2 - (min(ys) + max(ys)) / 2
    return [(x + dx, y + dy) for x, y in kept]


def inside_tile(x: float, y: float, margin: float) -> bool:
    """Whether a disc of radius ``margin`` at (x, y) lies inside the rounded tile (QtSvg
    ignores clip paths, so atoms are dropped rather than clipped)."""
    lo, hi, r = TILE[0] + margin, TILE[1] - margin, TILE_RADIUS - margin
    if not (lo <= x <= hi and lo <= y <= hi):
        return False
    cx = min(max(x, lo + r), hi - r)
    cy = min(max(y, lo + r), hi - r)
    return math.hypot(x - cx, y - cy) <= r


def svg() -> str:
    sites = lattice_pairs()
    bottom = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="14"/>' for x, y in sites)
    top = "".join(f'<circle cx="{x + SLIP[0]:.1f}" cy="{y + SLIP[1]:.1f}" r="10"/>'
                  for x, y in sites)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- stackview icon, drawn by packaging/make_icons.py (GPL-3.0-or-later, like stackview) -->
<svg xmlns="http://www.w3.org/2000/svg" width="{VIEW}" height="{VIEW}" viewBox="0 0 {VIEW} {VIEW}">
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#23466b"/>
      <stop offset="1" stop-color="#122338"/>
    </linearGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="44" fill="url(#bg)"/>
  <g fill="#8ecae6">{bottom}</g>
  <g fill="#ffb703" fill-opacity="0.92">{top}</g>
  <rect x="8" y="8" width="240" height="240" rx="44" fill="none" stroke="#0b1622"
        stroke-opacity="0.6" stroke-width="4"/>
</svg>
"""


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QByteArray, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - Qt needs it
    ICONS_DIR.mkdir(parents=True, exist_ok=True)
    text = svg()
    (ICONS_DIR / "stackview.svg").write_text(text, encoding="utf-8")
    renderer = QSvgRenderer(QByteArray(text.encode()))
    if not renderer.isValid():
        print("make_icons: Qt could not parse the generated SVG.", file=sys.stderr)
        return 1
    for size in SIZES_PX:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = ICONS_DIR / f"stackview-{size}.png"
        image.save(str(path), "PNG")
        print(f"wrote {path.relative_to(ICONS_DIR.parents[2])} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Twist angles a window cannot measure: near 0° and near the end of the twist domain.

Near θ = 0° (and, for MoS2-like layers, near 60°, the antiparallel alignment) the moiré period
``L = a / (2 sin(Δθ/2))`` grows without bound, and a window much smaller than L shows an
untwisted stack at one registry: the network's reading there is a guess. Rather than print it,
an analysis reports a bound, "θ < 3.0°" or "θ > 57.0°", with the limit derived from the window:
the angle whose moiré period is :data:`PERIODS_PER_WINDOW` windows.

The factor was measured on held-out simulations (docs/models.md, "Twist at the paper's
scale"): with 2.5 nm windows the mean error is within the 0.3° bar down to the angle whose period
is 2.4 windows (3.0°) and grows below it. No Qt here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: the moiré period, in windows, beyond which a window's twist reading becomes a bound
PERIODS_PER_WINDOW = 2.4


def resolvable_limit_deg(lattice_a_A: float, window_nm: float,
                         periods: float = PERIODS_PER_WINDOW) -> float:
    """The smallest twist away from alignment whose moiré period fits ``periods`` windows."""
    if not (window_nm > 0 and lattice_a_A > 0):
        raise ValueError("the window and the lattice constant must be positive")
    s = lattice_a_A / (2.0 * periods * window_nm * 10.0)
    return math.degrees(2.0 * math.asin(min(1.0, s)))


@dataclass
class TwistBounds:
    """Which windows read a bound instead of an angle.

    ``side``: per window of the grid (ny, nx), −1 where θ < ``low_deg``, +1 where θ >
    ``high_deg``, 0 where the angle is read; ``side_points``: the same per row of the map's
    points; ``read_points``: what the network read there (kept for the inspector's
    re-simulation, never reported as the angle).
    """

    limit_deg: float
    low_deg: float
    high_deg: float
    window_nm: float
    side: np.ndarray
    side_points: np.ndarray
    read_points: np.ndarray | None = None
    #: bounded windows whose side (which alignment) the re-simulation decided against the
    #: network's reading
    flipped_by_resimulation: int = 0

    @property
    def below(self) -> int:
        return int(np.sum(self.side_points < 0))

    @property
    def above(self) -> int:
        return int(np.sum(self.side_points > 0))

    @property
    def resolved(self) -> int:
        return int(np.sum(self.side_points == 0))

    def label(self, side: int) -> str:
        """The bound as map.csv writes it ("<3.0", ">57.0", or "" for a read angle)."""
        if side < 0:
            return f"<{self.low_deg:.1f}"
        if side > 0:
            return f">{self.high_deg:.1f}"
        return ""

    def text(self) -> str:
        """One sentence for the summary, the CLI and the window; empty when nothing is bound."""
        n = len(self.side_points)
        parts = []
        if self.below:
            parts.append(f"θ < {self.low_deg:.1f}° in {self.below} of {n} windows")
        if self.above:
            parts.append(f"θ > {self.high_deg:.1f}° in {self.above} of {n} windows")
        if not parts:
            return ""
        return (" and ".join(parts) + f": there the moiré period is longer than "
                f"{PERIODS_PER_WINDOW:g} windows of {self.window_nm:.2f} nm, so the window shows "
                "an untwisted stack and the angle is given as a bound, not read")

    def to_dict(self) -> dict:
        return {"limit_deg": round(self.limit_deg, 3), "low_deg": round(self.low_deg, 3),
                "high_deg": round(self.high_deg, 3), "window_nm": round(self.window_nm, 4),
                "periods_per_window": PERIODS_PER_WINDOW, "below": self.below,
                "above": self.above, "resolved": self.resolved,
                "flipped_by_resimulation": self.flipped_by_resimulation, "text": self.text()}


def twist_bounds(theta_deg, space, window_nm: float) -> tuple[float, float, float, np.ndarray]:
    """(limit, low, high, side) for readings ``theta_deg`` (any shape) in a twist label space."""
    limit = resolvable_limit_deg(space.material.a_A, window_nm)
    lo, hi = space.domain_deg
    return limit, lo + limit, hi - limit, _sides(theta_deg, lo + limit, hi - limit)


def _sides(theta_deg, low: float, high: float) -> np.ndarray:
    t = np.asarray(theta_deg, dtype=float)
    side = np.zeros(t.shape, dtype=np.int8)
    finite = np.isfinite(t)
    side[finite & (t < low)] = -1
    # the far end of the domain is a second alignment (60° for MoS2: the antiparallel layers),
    # or the same one again (a domain of one whole period)
    side[finite & (t > high)] = 1
    return side


def apply_twist_bounds(smap, space) -> TwistBounds:
    """Replace the readings a window cannot resolve by bounds, in place (values become NaN).

    Run it after the re-simulation check, which scores what the network read.
    """
    col = smap.names.index("theta_deg")
    read = smap.points[:, 2 + col].copy()
    limit, low, high, side_points = twist_bounds(read, space, smap.window_nm)
    side = _sides(smap.values[..., col], low, high)
    smap.values[..., col][side != 0] = np.nan
    smap.points[side_points != 0, 2 + col] = np.nan
    bounds = TwistBounds(limit, low, high, float(smap.window_nm), side, side_points, read)
    smap.bounds = bounds
    return bounds


#: the better alignment must re-simulate a window by this much more NCC to overrule the network
SIDE_MARGIN_NCC = 0.02
#: at most this many bounded windows are re-simulated; the others follow the nearest of them
MAX_SIDE_CHECKS = 32


def decide_sides(bounds: TwistBounds, smap, sampler, pixel_size_nm: float, resimulator,
                 cancel=None, progress=None) -> TwistBounds:
    """Which alignment a bounded window shows, decided by re-simulation where it is clear.

    Near 0° the layers are parallel, near 60° (MoS2) antiparallel: a small window sees one
    registry of either, and the network sometimes reads one family for the other. Each bounded
    window is compared with the two untwisted stacks (each layer placed separately, so every
    registry is tried); where one matches better by :data:`SIDE_MARGIN_NCC` it decides the
    side, else the network's reading stands. Materials whose two ends are the same alignment
    (no mirror) are left as they are. Changes ``bounds`` in place.
    """
    space_lo, space_hi = bounds.low_deg - bounds.limit_deg, bounds.high_deg + bounds.limit_deg
    idx = np.nonzero(bounds.side_points != 0)[0]
    if not len(idx) or not getattr(resimulator, "task", "") == "twist":
        return bounds
    pts = smap.points
    checked = idx[np.unique(np.linspace(0, len(idx) - 1, min(len(idx), MAX_SIDE_CHECKS))
                            .round().astype(int))]
    decided = np.zeros(len(checked), dtype=np.int8)
    for j, k in enumerate(checked):
        if cancel is not None:
            cancel.check()
        if progress is not None:
            progress(j, len(checked), "re-simulating the aligned stacks")
        window = sampler.extract(pts[k:k + 1, :2] / pixel_size_nm)[0]
        lo, hi = resimulator.ncc(window, space_lo), resimulator.ncc(window, space_hi)
        if np.isfinite(lo) and np.isfinite(hi) and abs(lo - hi) > SIDE_MARGIN_NCC:
            decided[j] = -1 if lo > hi else 1
    new = bounds.side_points.copy()
    for k in idx:
        d = np.hypot(pts[checked, 0] - pts[k, 0], pts[checked, 1] - pts[k, 1])
        j = int(np.argmin(d))
        if decided[j] != 0:
            new[k] = decided[j]
    bounds.flipped_by_resimulation = int(np.sum(new != bounds.side_points))
    bounds.side_points = new
    level0 = pts[:, -1] == 0
    if level0.sum() == bounds.side.size:
        bounds.side = new[level0].reshape(bounds.side.shape)
    return bounds

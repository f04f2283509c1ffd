"""Statistics over a batch of analysed images, shared by ``stackview analyze FOLDER`` and the
GUI's batch panel, so both flag and exclude unreliable images the same way.

An unreliable image (``AnalysisResult.reliable`` false: its windows do not match a re-simulation
of what was read, or the lattice could not be read) keeps its row in ``stats.csv``, marked in
the ``reliable`` column with the reason beside it, and is left out of the aggregate statistics
over the batch. No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: said for an unreliable image whose analysis gave no reason
NO_REASON = "the analysis did not say why"


def stats_row(result, path: str | Path | None = None) -> dict:
    """The image's row of ``stats.csv``: :meth:`AnalysisResult.stats_row`, named after
    ``path`` when given, with ``reliable_reason`` next to ``reliable`` (empty when reliable)."""
    row = result.stats_row()
    if path is not None:
        row["image"] = Path(path).name
    out = {}
    for key, value in row.items():
        out[key] = value
        if key == "reliable":
            out["reliable_reason"] = "" if value else (result.reliability_reason or NO_REASON)
    return out


def is_reliable(row: dict) -> bool:
    """Whether a stats row is reliable; rows read back from a ``stats.csv`` hold the strings
    "True"/"False", and rows written before the flag existed count as reliable."""
    value = row.get("reliable", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)


@dataclass
class BatchStatistics:
    """Which images of a batch are unreliable, and each label over the reliable ones."""

    n_images: int
    #: (image name, reason) of each unreliable image, in the batch's order
    unreliable: list[tuple[str, str]]
    #: label -> {"median", "iqr", "min", "max", "n"} of the reliable images' medians
    labels: dict[str, dict] = field(default_factory=dict)

    @property
    def n_reliable(self) -> int:
        return self.n_images - len(self.unreliable)

    def headline(self) -> str:
        """'statistics over 5 images' plus, when some are unreliable, which and what was done."""
        text = f"statistics over {self.n_images} image{'s' if self.n_images != 1 else ''}"
        if self.unreliable:
            names = ", ".join(name for name, _ in self.unreliable)
            text += (f"; {len(self.unreliable)} unreliable ({names}): marked in stats.csv and "
                     "excluded from the aggregate")
        return text

    def aggregate_lines(self) -> list[str]:
        """One line per label over the reliable images (or why there is none)."""
        if not self.n_reliable:
            return ["no reliable image: no aggregate statistics"]
        return [f"{name}: median of the image medians {s['median']:.3f} (IQR {s['iqr']:.3f}, "
                f"range {s['min']:.3f} to {s['max']:.3f}) over {s['n']} reliable "
                f"image{'s' if s['n'] != 1 else ''}"
                for name, s in self.labels.items()]


def batch_statistics(rows: list[dict]) -> BatchStatistics:
    """Flag the unreliable rows and aggregate each ``<label>_median`` column over the rest."""
    unreliable = [(str(r.get("image", "?")), str(r.get("reliable_reason") or NO_REASON))
                  for r in rows if not is_reliable(r)]
    names = list(dict.fromkeys(k[:-len("_median")] for r in rows for k in r
                               if k.endswith("_median")))
    labels = {}
    for name in names:
        values = np.array([_number(r.get(f"{name}_median")) for r in rows if is_reliable(r)],
                          dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        labels[name] = {"median": float(q50), "iqr": float(q75 - q25),
                        "min": float(values.min()), "max": float(values.max()),
                        "n": int(len(values))}
    return BatchStatistics(len(rows), unreliable, labels)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):  # an empty cell of a stats.csv read back
        return float("nan")

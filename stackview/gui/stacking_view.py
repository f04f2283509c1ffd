"""The stacking classes of a family model's map in the window (no Qt): one flat colour per
class (the figure's :data:`~stackview.analysis.export.CLASS_COLOURS`), the legend of the classes
present with their counts, the words for one window (family, class, distance to the class), the
results panel's lines, and the PEL pane's family (the map's majority family) and slips."""

from __future__ import annotations

import numpy as np

#: the categorical layer's name in the results panel's layer list
STACKING = "stacking class"
#: how the PEL pane and the summary name the families of hexagonal TMD bilayers
FAMILY_WORDS = {"parallel": "parallel (3R) family", "antiparallel": "antiparallel (2H) family"}


def has_stacking(smap) -> bool:
    """Whether a map was read by a model of both families (it has per-window classes)."""
    return getattr(smap, "stacking", None) is not None


def class_label(name: str) -> str:
    """A class name for display: the typographic prime (AA′) for the files' apostrophe."""
    return str(name).replace("'", "\u2032")


def hex_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def class_colour(name: str) -> tuple[int, int, int]:
    """The class's colour as (r, g, b), the figure's (black for a class it has none for)."""
    from stackview.analysis.export import CLASS_COLOURS

    return hex_rgb(CLASS_COLOURS.get(str(name), "#000000"))


def class_rgba(grid: np.ndarray) -> np.ndarray:
    """The grid of class names (ny, nx) as an RGBA image (uint8): each class its flat colour,
    opaque; cells without a window (``""``) transparent."""
    grid = np.asarray(grid).astype(str)
    out = np.zeros((*grid.shape, 4), dtype=np.uint8)
    for name in np.unique(grid):
        if name:
            out[grid == name] = (*class_colour(name), 255)
    return out


def class_counts(grid: np.ndarray, classes=()) -> list[tuple[str, int]]:
    """The classes present on the grid with their window counts: most windows first,
    ``intermediate`` last (ties in ``classes`` order)."""
    names, n = np.unique(np.asarray(grid).astype(str), return_counts=True)
    return ordered_counts({str(k): int(c) for k, c in zip(names, n, strict=True) if k}, classes)


def ordered_counts(counts: dict, classes=()) -> list[tuple[str, int]]:
    """``{class: count}`` in legend order: most windows first, ``intermediate`` last, ties in
    ``classes`` order (default: the figure's, AA, AB/BA, AA', AB', A'B)."""
    from stackview.analysis.export import CLASS_COLOURS
    from stackview.core.stacking import INTERMEDIATE

    order = {c: i for i, c in enumerate(classes or tuple(CLASS_COLOURS))}
    pairs = [(str(k), int(c)) for k, c in counts.items() if k]
    return sorted(pairs, key=lambda p: (p[0] == INTERMEDIATE, -p[1], order.get(p[0], 99), p[0]))


def legend_text(counts) -> str:
    """'AA′ 812 · AB/BA 33 · intermediate 4'."""
    return " · ".join(f"{class_label(k)} {n}" for k, n in counts)


def legend_html(counts) -> str:
    """The legend with a swatch of each class's colour before its name."""
    parts = []
    for k, n in counts:
        r, g, b = class_colour(k)
        parts.append(f'<span style="color:#{r:02x}{g:02x}{b:02x}; font-size:large">&#9632;'
                     f"</span>&nbsp;{class_label(k)} {n}")
    return "stacking class: " + " &middot; ".join(parts)


def stacking_words(family: str, name: str, distance_A: float) -> str:
    """'stacking AA′ (antiparallel family), 0.03 Å from AA′' for one window ('' unread)."""
    if not name:
        return ""
    from stackview.core.stacking import INTERMEDIATE

    text = f"stacking {class_label(name)} ({family} family)"
    if np.isfinite(distance_A):
        where = "the nearest class" if name == INTERMEDIATE else class_label(name)
        text += f", {distance_A:.2f} Å from {where}"
    return text


def window_stacking(smap, k: int) -> str:
    """:func:`stacking_words` of window ``k`` (a row of ``smap.points``); '' without classes."""
    st = getattr(smap, "stacking", None)
    if st is None:
        return ""
    return stacking_words(str(st.family[k]), str(st.names[k]), float(st.distance_A[k]))


def grid_words(smap, material) -> np.ndarray:
    """:func:`stacking_words` of every cell of the map's grid (ny, nx; '' where unread): the
    class is the grid's (``smap.stacking.grid``), the family and the distance are those of the
    cell's labels (as :func:`stackview.analysis.fields.stacking_columns` reads them)."""
    from stackview.core.stacking import classify, family_names

    st = smap.stacking
    v = np.asarray(smap.values, dtype=float)[..., :3].reshape(-1, 3)
    ok = np.all(np.isfinite(v), axis=1)
    fam = np.where(ok, family_names(np.nan_to_num(v[:, 2], nan=0.0)), "")
    _, dist = classify(material, np.where(ok[:, None], v[:, :2], np.nan), fam)
    names = np.asarray(st.grid).astype(str).ravel()
    words = [stacking_words(str(f), str(n), float(d)) if o else ""
             for f, n, d, o in zip(fam, names, dist, ok, strict=True)]
    return np.array(words, dtype=object).reshape(st.grid.shape)


def summary_lines(statistics: dict, names) -> list[str]:
    """The results panel's lines for a family map: windows per family, per class, and the
    slip medians of the family that is not the majority (the panel's medians are the
    majority's)."""
    families = statistics.get("families")
    if not isinstance(families, dict):
        return []
    major = statistics.get("majority_family") or ""
    lines = ["stacking families: " + ", ".join(f"{f} {n}" for f, n in families.items())
             + " windows" + (f" (the slip medians are of the {major} ones)" if major else "")]
    stacking = statistics.get("stacking") or {}
    if stacking:
        lines.append("stacking classes: " + legend_text(ordered_counts(stacking)))
    for fam, stats in (statistics.get("per_family") or {}).items():
        if fam == major or not isinstance(stats, dict):
            continue
        parts = [f"{n} median {stats[n]['median']:.3f}, IQR {stats[n]['iqr']:.3f}"
                 for n in names if isinstance(stats.get(n), dict)]
        if parts:
            lines.append(f"{fam} windows: " + "; ".join(parts))
    return lines


def pel_family(result) -> str | None:
    """The family whose landscape the PEL pane shows: the map's majority family for a family
    model's map (``result.statistics['majority_family']``), None for other maps."""
    if not has_stacking(result.smap):
        return None
    major = (result.statistics or {}).get("majority_family")
    if major:
        return str(major)
    fam = np.asarray(result.smap.stacking.family).astype(str)
    return "antiparallel" if (fam == "antiparallel").sum() > (fam == "parallel").sum() \
        else "parallel"


def pel_slips(result, family: str | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(Da, Db) of the windows the PEL pane draws (all of them, or those of ``family``), how
    many those are and how many windows were read."""
    smap = result.smap
    if not ("Da_A" in smap.names and "Db_A" in smap.names):
        return np.zeros(0), np.zeros(0), 0, 0
    pts = np.asarray(smap.points)
    k = list(smap.names).index("Da_A")
    da, db = pts[:, 2 + k], pts[:, 3 + k]
    read = np.isfinite(da) & np.isfinite(db)
    keep = read
    if family is not None and has_stacking(smap):
        keep = read & (np.asarray(smap.stacking.family).astype(str) == family)
    return da[keep], db[keep], int(keep.sum()), int(read.sum())


def pel_notes(family: str, shown: int, read: int) -> list[str]:
    """The PEL pane's note on which windows it draws."""
    return [f"the {shown} windows of the {FAMILY_WORDS.get(family, family + ' family')} "
            f"(the map's majority) of {read} read; the other family's windows are not drawn"
            if shown < read else
            f"all {read} windows are of the {FAMILY_WORDS.get(family, family + ' family')}"]


def class_marks(material, family: str) -> list[tuple[str, float, float]]:
    """(label, x, y) in Å of the family's classes in the cell, for the PEL pane."""
    from stackview.core.stacking import stacking_classes
    from stackview.materials import get_material

    m = get_material(material)
    a, b = np.asarray(m.a_vec_A, float)[:2], np.asarray(m.b_vec_A, float)[:2]
    out = []
    for c in stacking_classes(m, family):
        for fa, fb in _cell_images(c.frac):
            xy = fa * a + fb * b
            out.append((c.label, float(xy[0]), float(xy[1])))
    return out


def _cell_images(frac) -> list[tuple[float, float]]:
    """The class's position and its lattice images inside the closed cell [0, 1]²."""
    fa, fb = (float(v) % 1.0 for v in frac)
    out = []
    for da in (0.0, 1.0):
        for db in (0.0, 1.0):
            if fa + da <= 1.0 + 1e-9 and fb + db <= 1.0 + 1e-9:
                out.append((fa + da, fb + db))
    return out

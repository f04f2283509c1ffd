"""PEL files: the CSV grid with its JSON provenance, a user's own DFT grid, and the per-material
cache (the user's landscape first, then the shipped one), one landscape per stacking family:
``<material>.csv`` for the parallel family, ``<material>_antiparallel.csv`` for the other; the
family is recorded in the JSON (absent means parallel)."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from stackview.core.stacking import check_family
from stackview.errors import UsageError
from stackview.io.atomic import atomic_path, write_text_atomic
from stackview.materials import Material, get_material
from stackview.pel.landscape import (
    _CSV_HEADER,
    PEL_FORMAT,
    Landscape,
    _material_record,
    _version,
    check_family_name,
    grid_orbits,
    slip_symmetry_ops,
    summarize,
)


# --- files -------------------------------------------------------------------------------------
def write_landscape(landscape: Landscape, csv_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the CSV grid and its JSON provenance (same stem, ``.json``) atomically."""
    csv_path = Path(csv_path)
    if csv_path.suffix.lower() != ".csv":
        raise UsageError(f"the landscape file must end in .csv, not {csv_path.name}")
    da, db, e = landscape.grid_arrays()
    fa, fb = np.meshgrid(landscape.frac_a, landscape.frac_b, indexing="ij")
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_CSV_HEADER)
        for idx in np.ndindex(e.shape):
            s = landscape.spacing_A[idx]
            w.writerow([f"{da[idx]:.6f}", f"{db[idx]:.6f}", f"{fa[idx]:.6f}", f"{fb[idx]:.6f}",
                        f"{e[idx]:.4f}", "" if not np.isfinite(s) else f"{s:.4f}"])
    json_path = csv_path.with_suffix(".json")
    prov = dict(landscape.provenance)
    prov.setdefault("format", PEL_FORMAT)
    prov.setdefault("material", _material_record(landscape.material))
    prov.setdefault("family", landscape.family)
    prov["summary"] = summarize(landscape)
    write_text_atomic(json_path, json.dumps(prov, indent=2, ensure_ascii=False) + "\n")
    return csv_path, json_path



def read_landscape(csv_path: str | os.PathLike, material: Material | str | None = None,
                   family: str | None = None) -> Landscape:
    """Read a landscape written by :func:`write_landscape` (CSV + JSON sidecar when present).

    The material comes from the sidecar unless given. A CSV without a sidecar is imported as a
    user grid (see :func:`import_csv`) of ``family`` (default parallel). With ``family`` given,
    a sidecar of the other family is an error.
    """
    csv_path = Path(csv_path)
    json_path = csv_path.with_suffix(".json")
    prov = {}
    if json_path.exists():
        try:
            prov = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"the provenance file {json_path} is not valid JSON") from exc
        if prov.get("format") != PEL_FORMAT:
            raise UsageError(f"{json_path} is not a stackview PEL provenance file")
    name = (prov.get("material") or {}).get("name")
    if material is not None and name and get_material(material).name != name:
        raise UsageError(f"{csv_path.name} is a landscape for {name}, not for "
                         f"{get_material(material).name}")
    if material is None:
        if not name:
            raise UsageError(f"{csv_path} has no provenance file naming its material; "
                             "give the material")
        material = name
    recorded = (prov.get("family") or "parallel") if prov else (family or "parallel")
    if family is not None and recorded != check_family_name(family):
        raise UsageError(f"{csv_path.name} is a landscape of the {recorded} family, not of the "
                         f"{family} one")
    land = import_csv(csv_path, material, recorded)
    if prov:
        object.__setattr__(land, "provenance", {**prov, "family": recorded})
    return land


def import_csv(csv_path: str | os.PathLike, material: Material | str,
               family: str = "parallel") -> Landscape:
    """Import a user's PEL grid from CSV, validated, as a landscape of the stacking ``family``
    (``"parallel"`` or ``"antiparallel"``, whose symmetry fills missing points).

    The CSV needs a header naming the slip columns with their unit — ``Da_A, Db_A`` (Å along â
    and b̂) or ``frac_a, frac_b`` (fractions of the cell vectors) — and one energy column,
    ``energy_meV`` or ``energy_eV`` (per cell; any zero). Points must form a regular grid over
    the cell (``Na × Nb`` points at ``i/Na, j/Nb``; copies at fraction 1 are dropped); points
    missing from the grid are filled from symmetry-equivalent points (for MoS2 half the cell or
    less suffices), and a grid with points still missing is rejected. Extra columns (e.g.
    ``spacing_A``) are kept when known. Errors are one sentence.
    """
    material = get_material(material)
    check_family(material, check_family_name(family))
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{csv_path.name} is not a text CSV file") from exc
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) < 2:
        raise UsageError(f"{csv_path.name} has no data rows (a header and a grid are needed)")
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader)]
    cols = {h.lower(): k for k, h in enumerate(header)}
    if "da_a" in cols and "db_a" in cols:
        ka, kb, scale = cols["da_a"], cols["db_a"], (1 / material.a_A, 1 / material.b_A)
    elif "frac_a" in cols and "frac_b" in cols:
        ka, kb, scale = cols["frac_a"], cols["frac_b"], (1.0, 1.0)
    else:
        raise UsageError(f"{csv_path.name} must have slip columns with their unit: Da_A and Db_A "
                         "(Å) or frac_a and frac_b (cell fractions)")
    if "energy_mev" in cols:
        ke, e_scale = cols["energy_mev"], 1.0
    elif "energy_ev" in cols:
        ke, e_scale = cols["energy_ev"], 1000.0
    else:
        raise UsageError(f"{csv_path.name} must have an energy column with its unit: "
                         "energy_meV or energy_eV (per cell)")
    ks = cols.get("spacing_a")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        try:
            fa = float(row[ka]) * scale[0]
            fb = float(row[kb]) * scale[1]
            e = float(row[ke]) * e_scale
            s = float(row[ks]) if ks is not None and ks < len(row) and row[ks].strip() else np.nan
        except (ValueError, IndexError) as exc:
            raise UsageError(f"row {lineno} of {csv_path.name} is not a list of numbers") from exc
        if not (math.isfinite(fa) and math.isfinite(fb) and math.isfinite(e)):
            raise UsageError(f"row {lineno} of {csv_path.name} has a value that is not finite")
        rows.append((fa, fb, e, s))
    arr = np.array(rows)
    if np.any(arr[:, :2] < -1e-4) or np.any(arr[:, :2] > 1 + 1e-4):
        raise UsageError(f"slips in {csv_path.name} must lie within one cell (0 ≤ Da < |a| = "
                         f"{material.a_A:.4f} Å, 0 ≤ Db < |b| = {material.b_A:.4f} Å)")
    na = _grid_count(arr[:, 0], "Da", csv_path.name)
    nb = _grid_count(arr[:, 1], "Db", csv_path.name)
    energy = np.full((na, nb), np.nan)
    spacing = np.full((na, nb), np.nan)
    for fa, fb, e, s in arr:
        copy = round(fa * na) == na or round(fb * nb) == nb  # periodic copy of fraction 0
        i, j = round(fa * na) % na, round(fb * nb) % nb
        if np.isfinite(energy[i, j]):
            if not copy and abs(energy[i, j] - e) > 1e-3:
                raise UsageError(f"{csv_path.name} gives two energies for the slip "
                                 f"({fa * material.a_A:.4f}, {fb * material.b_A:.4f}) Å")
            continue
        energy[i, j] = e
        spacing[i, j] = s
    missing = ~np.isfinite(energy)
    if missing.any():
        reps = grid_orbits((na, nb), slip_symmetry_ops(material, family=family))
        for idx in zip(*np.nonzero(missing), strict=True):
            same = (reps == reps[idx]) & np.isfinite(energy)
            if same.any():
                k = tuple(np.argwhere(same)[0])
                energy[idx], spacing[idx] = energy[k], spacing[k]
    missing = ~np.isfinite(energy)
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise UsageError(f"{csv_path.name} is not a complete regular {na}×{nb} grid: "
                         f"{int(missing.sum())} points are missing, e.g. Da = "
                         f"{i / na * material.a_A:.4f} Å, Db = {j / nb * material.b_A:.4f} Å")
    prov = {"format": PEL_FORMAT, "source": "imported", "imported_from": str(csv_path),
            "material": _material_record(material), "family": family, "grid": [na, nb],
            "energy_unit": "meV per cell, relative to the grid minimum",
            "energy_column": header[ke], "relax": None, "calculator": {"name": "user data"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stackview_version": _version()}
    return Landscape(material, energy, spacing, prov)


def _grid_count(frac: np.ndarray, name: str, fname: str) -> int:
    """Number of grid points per cell side implied by the fractional coordinates."""
    values = np.unique(np.round(frac % 1.0, 6) % 1.0)
    if len(values) < 2:
        raise UsageError(f"{fname} has a single {name} value; a grid needs at least 2")
    steps = np.diff(np.append(values, 1.0 + values[0]))
    step = steps.min()
    n = round(1.0 / step) if step > 0 else 0
    if n < 2 or n > 1000 or np.any(np.abs(values * n - np.round(values * n)) > 1e-2):
        raise UsageError(f"the {name} values in {fname} are not on a regular grid over the cell "
                         f"(spacing |cell|/N from 0)")
    return int(n)



# --- cache -------------------------------------------------------------------------------------
def file_stem(material: Material | str, family: str = "parallel") -> str:
    """File name stem of a material's landscape of one family (``MoS2``, ``MoS2_antiparallel``)."""
    name = get_material(material).name
    return name if check_family_name(family) == "parallel" else f"{name}_{family}"


def shipped_path(material: Material | str, family: str = "parallel") -> Path:
    """Path of the landscape shipped in ``stackview/resources/pel/`` for a material and family
    (may not exist)."""
    from stackview.paths import RESOURCES_DIR

    return RESOURCES_DIR / "pel" / f"{file_stem(material, family)}.csv"


def user_path(material: Material | str, family: str = "parallel") -> Path:
    """Path of the user's cached landscape of a material and family in the user data
    directory."""
    from stackview.paths import user_data_dir

    return user_data_dir() / "pel" / f"{file_stem(material, family)}.csv"


def cache_landscape(landscape: Landscape) -> Path:
    """Store a landscape as the user's landscape of its material and family; returns the CSV
    path."""
    return write_landscape(landscape, user_path(landscape.material, landscape.family))[0]


def load_landscape(source: str | os.PathLike | Material | None = None,
                   material: Material | str | None = None,
                   family: str | None = None) -> Landscape:
    """The landscape to use: a CSV path, or the material's (user cache first, then shipped).

    Parameters
    ----------
    source
        A CSV path; or ``None``/``"auto"``/a material name to look the material's up.
    material
        The material (needed for a CSV without provenance, and for the look-up).
    family
        The stacking family (``"parallel"`` or ``"antiparallel"``): the look-up finds that
        family's landscape (default parallel); a CSV of another family is an error.
    """
    if source is not None and str(source) not in ("auto", "") and (
            str(source).lower().endswith(".csv") or Path(str(source)).exists()):
        path = Path(str(source))
        if not path.exists():
            raise UsageError(f"the landscape file {path} does not exist")
        return read_landscape(path, material, family)
    name = material if source in (None, "auto", "") else source
    if name is None:
        raise UsageError("give a material or a landscape CSV file")
    mat = get_material(name)
    family = check_family(mat, check_family_name(family or "parallel"))
    for path in (user_path(mat, family), shipped_path(mat, family)):
        if path.exists():
            return read_landscape(path, mat, family)
    option = "" if family == "parallel" else f" --family {family}"
    what = "" if family == "parallel" else f" ({family} family)"
    raise UsageError(f"no landscape for {mat.name}{what} yet: compute one with "
                     f"stackview pel --material {mat.name}{option}, or import your own CSV")



"""Built-in and user materials: lookup by name, import from structure files.

Built-in materials are JSON files in ``stackview/materials/data`` made by
``python -m stackview.materials.catalog SHARED_STRUCTURES_DIR`` from :data:`BUILTIN_RECIPES`
(so they are reproducible): the paper's monolayer models (``"file"`` recipes) and ASE's
``ase.build.mx2`` with literature lattice constants (``"ase_mx2"`` recipes); user materials live
in ``<user data dir>/materials``. No Qt here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from stackview.errors import UsageError
from stackview.io.atomic import write_text_atomic
from stackview.materials.cell import Material
from stackview.paths import user_data_dir

BUILTIN_DIR = Path(__file__).resolve().parent / "data"

#: how each built-in is made from the paper's structures, and what the literature says
BUILTIN_RECIPES = {
    "MoS2": {
        "file": "MoS2_one_layer_tedgen.xyz",
        "interlayer_A": 6.15,
        "description": "2H/3R molybdenum disulfide monolayer (hexagonal, 3-fold)",
        "literature": {"a_A": 3.160, "interlayer_A": 6.15,
                       "reference": "bulk 2H-MoS2, a = 3.160 Å, c/2 = 6.15 Å"},
    },
    "ReS2": {
        "file": "ReS2_one_layer_tedgen.xyz",
        "interlayer_A": 6.40,
        "description": "1T'' rhenium disulfide monolayer (triclinic)",
        "literature": {"a_A": 6.419, "b_A": 6.523, "gamma_deg": 118.84, "interlayer_A": 6.40,
                       "reference": "Materials Project mp-572758 (PBE) in this convention; "
                                    "experimental interlayer distance ~6.4 Å"},
    },
    "ReSe2": {
        "file": "ReSe2_one_layer_tedgen.xyz",
        "interlayer_A": 6.72,
        "description": "1T'' rhenium diselenide monolayer (triclinic)",
        "literature": {"a_A": 6.597, "b_A": 6.710, "gamma_deg": 118.9, "interlayer_A": 6.72,
                       "reference": "bulk ReSe2 (X-ray), a = 6.597, b = 6.710 Å, gamma ≈ 118.9°"},
    },
    # 2H-MX2 monolayers from ase.build.mx2 with the bulk X-ray lattice constants; the
    # chalcogen-chalcogen thickness is (1.5 − 2·z)·c for the chalcogen at (1/3, 2/3, z) of
    # P6_3/mmc, the interlayer distance c/2
    "MoSe2": {
        "ase_mx2": {"formula": "MoSe2", "a": 3.288, "thickness": 3.335},
        "interlayer_A": 6.46,
        "description": "2H/3R molybdenum diselenide monolayer (hexagonal, 3-fold)",
        "literature": {"a_A": 3.288, "c_A": 12.927, "z_chalcogen": 0.621,
                       "thickness_A": 3.335, "interlayer_A": 6.46,
                       "reference": "bulk 2H-MoSe2 (X-ray): a = 3.288 Å, c = 12.927 Å, "
                                    "z(Se) = 0.621, so Se–Se thickness (1.5 − 2z)·c = 3.335 Å "
                                    "and interlayer distance c/2 = 6.46 Å; Schutte, de Boer & "
                                    "Jellinek, J. Solid State Chem. 70, 207 (1987)"},
    },
    "WS2": {
        "ase_mx2": {"formula": "WS2", "a": 3.153, "thickness": 3.14},
        "interlayer_A": 6.16,
        "description": "2H/3R tungsten disulfide monolayer (hexagonal, 3-fold)",
        "literature": {"a_A": 3.153, "c_A": 12.323, "thickness_A": 3.14, "interlayer_A": 6.16,
                       "reference": "bulk 2H-WS2 (X-ray): a = 3.153 Å, c = 12.323 Å, "
                                    "S–S thickness 3.14 Å (z(S) ≈ 0.6226), interlayer distance "
                                    "c/2 = 6.16 Å; Schutte, de Boer & Jellinek, J. Solid State "
                                    "Chem. 70, 207 (1987)"},
    },
}


def _user_dir() -> Path:
    path = user_data_dir() / "materials"
    path.mkdir(parents=True, exist_ok=True)
    return path


def list_materials() -> list[str]:
    """Names of the built-in materials followed by the user's own."""
    names = sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))
    user = sorted(p.stem for p in _user_dir().glob("*.json") if p.stem not in names)
    return names + user


def is_builtin(name: str) -> bool:
    return (BUILTIN_DIR / f"{name}.json").exists()


def get_material(name: str | Material) -> Material:
    """Look a material up by name (case-insensitive); a ``Material`` passes through."""
    if isinstance(name, Material):
        return name
    wanted = str(name).strip().lower()
    for directory in (BUILTIN_DIR, _user_dir()):
        for path in directory.glob("*.json"):
            if path.stem.lower() == wanted:
                return load_material_json(path)
    known = ", ".join(list_materials())
    raise UsageError(f"unknown material {name!r}; known materials are {known}")


def load_material_json(path: str | Path) -> Material:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not a valid material file ({exc.msg})") from exc
    return Material.from_dict(data)


def material_from_file(
    path: str | Path, name: str | None = None, interlayer_A: float | None = None,
) -> Material:
    """Read a monolayer (or a layered bulk cell) from CIF/xyz/POSCAR/... through ASE."""
    import ase.io

    from stackview.materials.derive import material_from_atoms

    path = Path(path)
    if not path.exists():
        raise UsageError(f"the structure file {path} does not exist")
    try:
        atoms = ase.io.read(path)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise UsageError(f"could not read {path.name} as a structure file ({exc})") from exc
    return material_from_atoms(
        atoms, name or path.stem.split("_")[0], interlayer_A=interlayer_A,
        source=f"imported from {path.name}",
    )


def save_user_material(material: Material, overwrite: bool = False) -> Path:
    """Register a material in the user's library; returns the JSON path."""
    if is_builtin(material.name):
        raise UsageError(f"{material.name} is a built-in material; choose another name")
    if not material.name.replace("-", "").replace("_", "").isalnum():
        raise UsageError("a material name may contain only letters, digits, '-' and '_'")
    target = _user_dir() / f"{material.name}.json"
    if target.exists() and not overwrite:
        raise UsageError(f"a user material named {material.name} exists already")
    write_text_atomic(target, json.dumps(material.to_dict(), indent=2) + "\n")
    return target


def material_from_mx2(name: str, recipe: dict) -> Material:
    """A 2H-MX2 monolayer from ``ase.build.mx2`` in the convention of MoS2.json.

    ``recipe["ase_mx2"]`` gives ``formula``, ``a`` (Å) and ``thickness`` (chalcogen-chalcogen,
    Å). ASE puts the metal at fractional (0, 0) and the chalcogens at (2/3, 1/3); the built-ins
    put them at (1/3, 2/3), so fractions map to −frac mod 1 (the layer turned by 180° about the
    metal, the same crystal). ASE's a lies along x and b at 120°, as the convention wants.
    """
    from ase.build import mx2

    spec = recipe["ase_mx2"]
    atoms = mx2(spec["formula"], kind="2H", a=float(spec["a"]),
                thickness=float(spec["thickness"]), vacuum=None)
    cell = atoms.cell.array[:2, :2]
    frac = atoms.get_scaled_positions(wrap=False)[:, :2]
    frac = np.round((-frac) % 1.0, 12) % 1.0
    z = atoms.positions[:, 2] - atoms.positions[:, 2].mean()
    symbols = atoms.get_chemical_symbols()
    order = sorted(range(len(symbols)), key=lambda i: (-atoms.numbers[i], z[i]))
    return Material(
        name=name, a_vec_A=cell[0], b_vec_A=cell[1], symbols=tuple(symbols[i] for i in order),
        frac_ab=frac[order], z_A=z[order], interlayer_A=float(recipe["interlayer_A"]),
        description=recipe["description"],
        source=f"ase.build.mx2('{spec['formula']}', kind='2H', a={spec['a']}, "
               f"thickness={spec['thickness']}) with the chalcogens moved to (1/3, 2/3) by "
               "frac -> -frac",
    )


def regenerate_builtins(structures_dir: str | Path, names=None) -> list[Path]:
    """Re-derive the built-in materials from their recipes (the paper's monolayer models in
    ``structures_dir``, or ASE's ``mx2``); ``names`` limits it to some of them."""
    import ase.io

    from stackview.materials.derive import material_from_atoms

    written = []
    for name, recipe in BUILTIN_RECIPES.items():
        if names is not None and name not in names:
            continue
        if "ase_mx2" in recipe:
            material = material_from_mx2(name, recipe)
        else:
            src = Path(structures_dir) / recipe["file"]
            material = material_from_atoms(
                ase.io.read(src), name, interlayer_A=recipe["interlayer_A"],
                description=recipe["description"],
                source=f"primitive cell derived from the paper's {recipe['file']} "
                       "(dptech-corp/TED-Gen, Apache-2.0)",
            )
        data = material.to_dict()
        data["literature"] = recipe["literature"]
        target = BUILTIN_DIR / f"{name}.json"
        write_text_atomic(target, json.dumps(data, indent=2) + "\n")
        written.append(target)
    return written


if __name__ == "__main__":
    # python -m stackview.materials.catalog [STRUCTURES_DIR [NAME ...]]
    for p in regenerate_builtins(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/structures",
                                 sys.argv[2:] or None):
        print(p)

"""Built-in and user materials: lookup by name, import from structure files.

Built-in materials are JSON files in ``stackview/materials/data`` made by
``python -m stackview.materials.catalog SHARED_STRUCTURES_DIR`` from the paper's monolayer models
(so they are reproducible); user materials live in ``<user data dir>/materials``. No Qt here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def regenerate_builtins(structures_dir: str | Path) -> list[Path]:
    """Re-derive the built-in materials from the paper's monolayer models."""
    import ase.io

    from stackview.materials.derive import material_from_atoms

    written = []
    for name, recipe in BUILTIN_RECIPES.items():
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
    for p in regenerate_builtins(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/structures"):
        print(p)

"""Crystal data and stack builders (numpy + ASE; must not import Qt or torch).

``get_material(name)`` gives a :class:`Material` in the stackview cell convention (reduced cell,
``|a| <= |b|``, ``gamma >= 90°``, ``a`` along +x); ``build_stack`` and ``build_twisted`` make
slip-stacked and twisted multilayers as ``ase.Atoms``.
"""

from stackview.materials.builders import (
    StackArrays,
    build_slip_domains,
    build_stack,
    build_twist_domains,
    build_twisted,
    moire_period_A,
    stack_arrays,
    triangle_domains,
    twisted_arrays,
)
from stackview.materials.catalog import (
    get_material,
    list_materials,
    material_from_file,
    save_user_material,
)
from stackview.materials.cell import Material, reduce_basis_2d

__all__ = [
    "Material",
    "StackArrays",
    "build_slip_domains",
    "build_stack",
    "build_twist_domains",
    "build_twisted",
    "get_material",
    "list_materials",
    "material_from_file",
    "moire_period_A",
    "reduce_basis_2d",
    "save_user_material",
    "stack_arrays",
    "triangle_domains",
    "twisted_arrays",
]

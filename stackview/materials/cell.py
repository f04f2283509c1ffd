"""In-plane lattice conventions and the ``Material`` record (numpy only; no Qt, no torch).

Convention for every material's in-plane cell (used by slip labels, models and PEL grids):

* the cell is **Gauss-reduced**: ``|a| <= |b|`` and ``|a·b| <= |a|²/2``;
* the angle ``gamma`` between ``a`` and ``b`` is **>= 90°** (``a·b <= 0``);
* ``a`` lies along **+x** and ``b`` in the upper half plane (right-handed, ``a × b > 0``).

A reduced basis with ``a·b <= 0`` fixes the handedness of the pair; when it comes out
left-handed the monolayer is turned over (a 180° rotation about x: y → −y, z → −z), which is the
same crystal seen from its other face. For a triclinic layer such as ReS2 the two faces project
to mirror images, so the convention also fixes which face is "up".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from stackview.errors import UsageError


def reduce_basis_2d(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-reduce a 2-D lattice basis: shortest ``a``, then ``|a·b| <= |a|²/2``, ``a·b <= 0``.

    Parameters
    ----------
    a, b
        Lattice vectors (length-2 arrays, any unit).

    Returns
    -------
    (a, b)
        A reduced basis of the same lattice (handedness may differ from the input).
    """
    a = np.asarray(a, dtype=float).copy()
    b = np.asarray(b, dtype=float).copy()
    if abs(a[0] * b[1] - a[1] * b[0]) < 1e-9 * (a @ a + b @ b):
        raise UsageError("the two lattice vectors are parallel, so they do not span a 2-D cell")
    for _ in range(100):
        if a @ a > b @ b:
            a, b = b, a
        m = round((a @ b) / (a @ a))
        if m == 0:
            break
        b = b - m * a
    if a @ b > 0:
        b = -b
    return a, b


@dataclass(frozen=True, eq=False)
class Material:
    """A monolayer in the stackview cell convention.

    Attributes
    ----------
    name
        Short name (``"ReS2"``).
    a_vec_A, b_vec_A
        In-plane lattice vectors (Å, 2-D), ``a`` along +x (see module docstring).
    symbols
        Chemical symbol of each basis atom.
    frac_ab
        In-plane fractional coordinates of the basis atoms, shape (n, 2), in [0, 1).
    z_A
        Height of each basis atom relative to the layer's mid-plane (Å).
    interlayer_A
        Default distance between the mid-planes of adjacent layers (Å).
    description, source
        Human-readable description and provenance of the structure.
    """

    name: str
    a_vec_A: np.ndarray
    b_vec_A: np.ndarray
    symbols: tuple[str, ...]
    frac_ab: np.ndarray
    z_A: np.ndarray
    interlayer_A: float
    description: str = ""
    source: str = ""
    literature: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = np.asarray(self.a_vec_A, dtype=float)
        b = np.asarray(self.b_vec_A, dtype=float)
        object.__setattr__(self, "a_vec_A", a)
        object.__setattr__(self, "b_vec_A", b)
        object.__setattr__(self, "frac_ab", np.asarray(self.frac_ab, dtype=float).reshape(-1, 2))
        object.__setattr__(self, "z_A", np.asarray(self.z_A, dtype=float).reshape(-1))
        object.__setattr__(self, "symbols", tuple(self.symbols))
        if not (len(self.symbols) == len(self.frac_ab) == len(self.z_A)) or not self.symbols:
            raise UsageError(f"material {self.name!r} has an inconsistent or empty atom list")
        if abs(a[1]) > 1e-6 or a[0] <= 0:
            raise UsageError(f"material {self.name!r}: lattice vector a must lie along +x")
        if b[1] <= 0:
            raise UsageError(f"material {self.name!r}: lattice vector b must have y > 0")
        if a @ b > 1e-6 or a @ a > b @ b + 1e-6:
            raise UsageError(
                f"material {self.name!r}: the cell must be reduced with |a| <= |b| and gamma >= 90°"
            )
        if not (2.0 < self.interlayer_A < 20.0):
            raise UsageError(
                f"material {self.name!r}: interlayer distance {self.interlayer_A} Å is not "
                "between 2 and 20 Å"
            )

    # --- lattice -------------------------------------------------------------------------
    @property
    def a_A(self) -> float:
        return float(np.linalg.norm(self.a_vec_A))

    @property
    def b_A(self) -> float:
        return float(np.linalg.norm(self.b_vec_A))

    @property
    def gamma_deg(self) -> float:
        return math.degrees(
            math.acos(float(self.a_vec_A @ self.b_vec_A) / (self.a_A * self.b_A))
        )

    @property
    def cell_2d(self) -> np.ndarray:
        """2×2 matrix whose rows are a and b (Å)."""
        return np.stack([self.a_vec_A, self.b_vec_A])

    @property
    def unit_vectors(self) -> np.ndarray:
        """2×2 matrix whose rows are â and b̂ (slip D = Da·â + Db·b̂)."""
        return self.cell_2d / np.array([[self.a_A], [self.b_A]])

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def area_A2(self) -> float:
        return float(abs(np.linalg.det(self.cell_2d)))

    @property
    def thickness_A(self) -> float:
        return float(self.z_A.max() - self.z_A.min())

    @property
    def formula(self) -> str:
        from collections import Counter

        counts = Counter(self.symbols)
        return "".join(f"{el}{n if n > 1 else ''}" for el, n in counts.items())

    def slip_to_cartesian(self, slip_A) -> np.ndarray:
        """Cartesian in-plane vector(s) (Å) of slip(s) ``(Da, Db)`` given along â and b̂."""
        slip = np.asarray(slip_A, dtype=float)
        return slip @ self.unit_vectors

    def cartesian_to_slip(self, vec_A) -> np.ndarray:
        """Inverse of :meth:`slip_to_cartesian`."""
        return np.asarray(vec_A, dtype=float) @ np.linalg.inv(self.unit_vectors)

    def layer_positions(self) -> np.ndarray:
        """Cartesian positions (n, 3) of the basis atoms of one layer (mid-plane at z = 0)."""
        xy = self.frac_ab @ self.cell_2d
        return np.column_stack([xy, self.z_A])

    def numbers(self) -> np.ndarray:
        from ase.data import atomic_numbers

        return np.array([atomic_numbers[s] for s in self.symbols], dtype=int)

    def with_interlayer(self, interlayer_A: float) -> Material:
        return dataclasses.replace(self, interlayer_A=float(interlayer_A))

    # --- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "a_vec_A": [round(float(v), 6) for v in self.a_vec_A],
            "b_vec_A": [round(float(v), 6) for v in self.b_vec_A],
            "interlayer_A": round(float(self.interlayer_A), 4),
            "literature": self.literature,
            "atoms": [
                {"symbol": s, "frac_a": round(float(f[0]), 6), "frac_b": round(float(f[1]), 6),
                 "z_A": round(float(z), 6)}
                for s, f, z in zip(self.symbols, self.frac_ab, self.z_A, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Material:
        try:
            atoms = data["atoms"]
            return cls(
                name=str(data["name"]),
                a_vec_A=np.array(data["a_vec_A"], dtype=float),
                b_vec_A=np.array(data["b_vec_A"], dtype=float),
                symbols=tuple(a["symbol"] for a in atoms),
                frac_ab=np.array([[a["frac_a"], a["frac_b"]] for a in atoms], dtype=float),
                z_A=np.array([a["z_A"] for a in atoms], dtype=float),
                interlayer_A=float(data["interlayer_A"]),
                description=str(data.get("description", "")),
                source=str(data.get("source", "")),
                literature=dict(data.get("literature", {})),
            )
        except (KeyError, TypeError) as exc:
            raise UsageError(f"the material description is missing the field {exc}") from exc

    def summary(self) -> str:
        """Multi-line human-readable description (used by ``stackview materials show``)."""
        lines = [
            f"{self.name}  ({self.formula}, {self.n_atoms} atoms per cell)",
            f"  a = {self.a_A:.4f} Å   b = {self.b_A:.4f} Å   gamma = {self.gamma_deg:.3f}°",
            f"  a vector (Å) = ({self.a_vec_A[0]:.4f}, {self.a_vec_A[1]:.4f})",
            f"  b vector (Å) = ({self.b_vec_A[0]:.4f}, {self.b_vec_A[1]:.4f})",
            f"  layer thickness = {self.thickness_A:.3f} Å   interlayer distance = "
            f"{self.interlayer_A:.3f} Å",
        ]
        if self.literature:
            lit = ", ".join(f"{k} = {v}" for k, v in self.literature.items() if k != "reference")
            ref = self.literature.get("reference", "")
            lines.append(f"  literature: {lit}" + (f" ({ref})" if ref else ""))
        if self.description:
            lines.append(f"  {self.description}")
        if self.source:
            lines.append(f"  source: {self.source}")
        lines.append("  basis (frac a, frac b, z Å):")
        for s, f, z in zip(self.symbols, self.frac_ab, self.z_A, strict=True):
            lines.append(f"    {s:<3} {f[0]:8.5f} {f[1]:8.5f} {z:8.4f}")
        return "\n".join(lines)

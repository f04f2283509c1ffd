"""Imaging conditions of an ADF-STEM simulation: the :class:`Optics` dataclass and presets.

This module holds the microscope parameters that travel together through every simulator
(accelerating voltage, probe-forming aperture, ADF detector, defocus, spherical aberration,
source size), the paper's two presets and the relativistic electron wavelength. It is pure
Python + numpy and must not import Qt, torch or abTEM.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Optics", "PRESETS", "electron_wavelength_A"]

# CODATA 2018: h*c in eV*Angstrom and the electron rest energy in eV.
_HC_EV_A = 12398.419843320026
_ELECTRON_REST_ENERGY_EV = 510998.95


def electron_wavelength_A(energy_kV: float) -> float:
    """Relativistic electron wavelength.

    Parameters
    ----------
    energy_kV : float
        Accelerating voltage in kV.

    Returns
    -------
    float
        Wavelength in Å (0.01969 Å at 300 kV, 0.04866 Å at 60 kV).
    """
    energy_eV = float(energy_kV) * 1e3
    return _HC_EV_A / math.sqrt(energy_eV * (2.0 * _ELECTRON_REST_ENERGY_EV + energy_eV))


def _lorentz_factor(energy_kV: float) -> float:
    """Relativistic factor gamma = 1 + E / (m c^2) of an electron of the given energy."""
    return 1.0 + float(energy_kV) * 1e3 / _ELECTRON_REST_ENERGY_EV


@dataclass(frozen=True)
class Optics:
    """Microscope conditions of an ADF-STEM image (validated on construction).

    Parameters
    ----------
    energy_kV : float
        Accelerating voltage in kV, in (0, 2000].
    convergence_mrad : float
        Probe convergence semi-angle (objective aperture) in mrad, in (0, 200].
    adf_inner_mrad, adf_outer_mrad : float
        Inner and outer collection semi-angles of the annular dark-field detector in mrad,
        0 <= inner < outer.
    defocus_A : float
        Defocus in Å; positive is underfocus (the convention of Computem's ``df`` and
        abTEM's ``defocus``, i.e. ``C10 = -defocus_A``).
    Cs_A : float
        Third-order spherical aberration C30 in Å (1 mm = 1e7 Å); 0 for a corrected probe.
    source_size_A : float
        Full width at half maximum of the Gaussian (incoherent) source-size blur in Å, >= 0.

    Raises
    ------
    ValueError
        With a one-sentence message when a value is out of range or not a finite number.
    """

    energy_kV: float
    convergence_mrad: float
    adf_inner_mrad: float
    adf_outer_mrad: float
    defocus_A: float = 0.0
    Cs_A: float = 0.0
    source_size_A: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                raise ValueError(f"Optics.{f.name} must be a number, got {value!r}.")
            if not isinstance(value, (int, float)):
                try:
                    value = float(value)  # numpy scalars, strings of numbers
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Optics.{f.name} must be a number, got {getattr(self, f.name)!r}."
                    ) from None
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"Optics.{f.name} must be a finite number, got {value}.")
            object.__setattr__(self, f.name, value)
        if not 0.0 < self.energy_kV <= 2000.0:
            raise ValueError(f"energy_kV must be in (0, 2000] kV, got {self.energy_kV:g}.")
        if not 0.0 < self.convergence_mrad <= 200.0:
            raise ValueError(
                f"convergence_mrad must be in (0, 200] mrad, got {self.convergence_mrad:g}."
            )
        if self.adf_inner_mrad < 0.0:
            raise ValueError(f"adf_inner_mrad must be >= 0 mrad, got {self.adf_inner_mrad:g}.")
        if not self.adf_outer_mrad > self.adf_inner_mrad:
            raise ValueError(
                f"adf_outer_mrad ({self.adf_outer_mrad:g}) must be larger than "
                f"adf_inner_mrad ({self.adf_inner_mrad:g})."
            )
        if self.adf_outer_mrad > 1000.0:
            raise ValueError(f"adf_outer_mrad must be <= 1000 mrad, got {self.adf_outer_mrad:g}.")
        if self.source_size_A < 0.0:
            raise ValueError(f"source_size_A must be >= 0 Å, got {self.source_size_A:g}.")
        if abs(self.defocus_A) > 1e5:
            raise ValueError(f"defocus_A must be within ±1e5 Å, got {self.defocus_A:g}.")
        if abs(self.Cs_A) > 1e9:
            raise ValueError(f"Cs_A must be within ±1e9 Å (±100 mm), got {self.Cs_A:g}.")

    @property
    def wavelength_A(self) -> float:
        """Relativistic electron wavelength in Å."""
        return electron_wavelength_A(self.energy_kV)

    @property
    def probe_bandlimit_inv_A(self) -> float:
        """Highest spatial frequency of the probe intensity, 2·alpha/lambda, in 1/Å."""
        return 2.0 * self.convergence_mrad * 1e-3 / self.wavelength_A

    @property
    def nyquist_sampling_A(self) -> float:
        """Coarsest scan step (Å) that samples an ADF image without aliasing: lambda/(4 alpha)."""
        return 0.5 / self.probe_bandlimit_inv_A

    def replace(self, **changes: Any) -> Optics:
        """Return a copy with some fields changed (validated again)."""
        return Optics(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, float]:
        """Plain-float dict of the fields (JSON-serialisable, units in the keys)."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Optics:
        """Build from :meth:`to_dict` output; unknown keys raise a ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"Optics.from_dict expects a dict, got {type(data).__name__}.")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown optics field(s): {', '.join(unknown)}.")
        required = ("energy_kV", "convergence_mrad", "adf_inner_mrad", "adf_outer_mrad")
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"Missing optics field(s): {', '.join(missing)}.")
        return cls(**data)


#: The paper's imaging conditions (Computem/incostem simulations: Cs = 0, defocus 35-45 Å,
#: source size 0.6-0.7 Å; we take 40 Å and 0.65 Å).
PRESETS: dict[str, Optics] = {
    "ReS2-300kV": Optics(
        energy_kV=300.0,
        convergence_mrad=21.3,
        adf_inner_mrad=39.0,
        adf_outer_mrad=200.0,
        defocus_A=40.0,
        Cs_A=0.0,
        source_size_A=0.65,
    ),
    "MoS2-60kV": Optics(
        energy_kV=60.0,
        convergence_mrad=31.5,
        adf_inner_mrad=49.5,
        adf_outer_mrad=198.0,
        defocus_A=40.0,
        Cs_A=0.0,
        source_size_A=0.65,
    ),
}


#: default optics preset per material (the paper's conditions); other materials fall back to
#: :data:`FALLBACK_OPTICS`
DEFAULT_OPTICS = {"MoS2": "MoS2-60kV", "MoSe2": "MoS2-60kV", "WS2": "MoS2-60kV"}
FALLBACK_OPTICS = "ReS2-300kV"


#: defaults of a custom optics text for what it leaves out (the presets' values)
_CUSTOM_DEFAULTS = {"defocus_A": 40.0, "Cs_A": 0.0, "source_size_A": 0.65}
_CUSTOM_KEYS = {"kv": "energy_kV", "convergence": "convergence_mrad", "cs": "Cs_A",
                "defocus": "defocus_A", "source": "source_size_A"}
CUSTOM_OPTICS_EXAMPLE = "kv=200,convergence=25,adf=45-180"


def optics_text(optics: Optics) -> str:
    """A microscope's conditions as the text :func:`resolve_optics` reads back, so datasets, cards
    and command lines can name optics that are not presets (e.g. ``kv=200,convergence=25,
    adf=45-180``)."""
    parts = [f"kv={optics.energy_kV:g}", f"convergence={optics.convergence_mrad:g}",
             f"adf={optics.adf_inner_mrad:g}-{optics.adf_outer_mrad:g}"]
    for key, field in (("defocus", "defocus_A"), ("cs", "Cs_A"), ("source", "source_size_A")):
        if getattr(optics, field) != _CUSTOM_DEFAULTS[field]:
            parts.append(f"{key}={getattr(optics, field):g}")
    return ",".join(parts)


def resolve_optics(name: str) -> Optics:
    """The optics called ``name``: a preset of :data:`PRESETS`, or custom conditions written as
    ``kv=KV,convergence=MRAD,adf=INNER-OUTER`` (optional ``defocus=Å``, ``cs=Å``, ``source=Å``)."""
    from stackview.errors import UsageError

    text = str(name).strip()
    if text in PRESETS:
        return PRESETS[text]
    if "=" not in text:
        raise UsageError(f"unknown optics '{text}'; give a preset ({', '.join(PRESETS)}) or "
                         f"custom conditions such as {CUSTOM_OPTICS_EXAMPLE}")
    values: dict[str, float] = dict(_CUSTOM_DEFAULTS)
    try:
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = (s.strip().lower() for s in item.partition("="))
            if key == "adf":
                inner, _, outer = value.partition("-")
                values["adf_inner_mrad"], values["adf_outer_mrad"] = float(inner), float(outer)
            elif key in _CUSTOM_KEYS:
                values[_CUSTOM_KEYS[key]] = float(value)
            else:
                raise UsageError(f"unknown optics key '{key}' in '{text}'; use kv, convergence, "
                                 "adf, defocus, cs and source")
        return Optics(**values)
    except UsageError:
        raise
    except (TypeError, ValueError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) and str(exc).endswith(".") else ""
        raise UsageError(f"cannot read the optics '{text}' (write e.g. {CUSTOM_OPTICS_EXAMPLE})"
                         + (f": {detail[0].lower()}{detail[1:-1]}" if detail else "")) from None

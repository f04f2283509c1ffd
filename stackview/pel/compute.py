"""Computing a PEL: the slipped bilayer, the calculators and the (parallel) grid job.

See :mod:`stackview.pel.landscape` for the conventions; only one point per symmetry orbit is
computed. torch, CHGNet and dftd3 are imported only inside :func:`make_calculator`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import io
import logging
import multiprocessing
import time
import warnings
from dataclasses import dataclass

import numpy as np

from stackview.engine.jobs import CancelToken, ProgressCallback, null_progress
from stackview.errors import UsageError
from stackview.materials import Material, get_material
from stackview.pel.landscape import (
    _LICENCES,
    CALCULATORS,
    PEL_FORMAT,
    Landscape,
    PelSettings,
    _material_record,
    _version,
    grid_orbits,
    slip_symmetry_ops,
)

log = logging.getLogger(__name__)


# --- structures and calculators --------------------------------------------------------------
def bilayer_cell(material: Material | str, slip_A, interlayer_A: float | None = None,
                 vacuum_A: float = 20.0, family: str = "parallel"):
    """Periodic ``ase.Atoms`` of the slipped bilayer: bottom layer (tag 0) and the top layer
    (tag 1) translated by ``D = Da·â + Db·b̂`` (Å) and raised by ``interlayer_A``; periodic in
    the plane, ``vacuum_A`` of vacuum along z.

    ``family="antiparallel"``: the top layer is the bottom one turned by 180° about its metal
    atom (basis atom 0: in-plane ``(x, y) → −(x, y)`` relative to it, z kept) before the
    translation, so D is still (metal of the top layer) − (metal of the bottom layer).
    """
    from ase import Atoms

    from stackview.core.stacking import check_family

    material = get_material(material)
    check_family(material, family)
    d = material.interlayer_A if interlayer_A is None else float(interlayer_A)
    bottom = material.layer_positions()
    top = bottom.copy()
    if family == "antiparallel":
        top[:, :2] = 2 * bottom[0, :2] - bottom[:, :2]
    top[:, :2] += material.slip_to_cartesian(np.asarray(slip_A, dtype=float))
    top[:, 2] += d
    pos = np.vstack([bottom, top])
    pos[:, 2] += vacuum_A / 2 + material.thickness_A / 2
    cell = np.zeros((3, 3))
    cell[:2, :2] = material.cell_2d
    cell[2, 2] = d + material.thickness_A + vacuum_A
    n = material.n_atoms
    return Atoms(symbols=list(material.symbols) * 2, positions=pos, cell=cell,
                 pbc=(True, True, False), tags=[0] * n + [1] * n)


def make_calculator(name: str = "chgnet+d3", device: str = "cpu"):
    """Build a named calculator: ``"chgnet+d3"`` (CHGNet + DFT-D3(BJ), PBE) or ``"chgnet"``.

    Raises a :class:`UsageError` naming the missing package when CHGNet or dftd3 is absent.
    """
    if name not in CALCULATORS:
        raise UsageError(f"unknown PEL calculator {name!r}; choose one of {', '.join(CALCULATORS)}"
                         " or pass an ASE calculator")
    try:
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ModuleNotFoundError as exc:
        raise UsageError("the PEL calculator needs CHGNet: install it with "
                         "pip install 'stackview[pel]' (or pass your own ASE calculator)") from exc
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chg = CHGNetCalculator(model=CHGNet.load(verbose=False), use_device=device)
    if name == "chgnet":
        return chg
    try:
        from dftd3.ase import DFTD3
    except ModuleNotFoundError as exc:
        raise UsageError("the D3 dispersion correction needs the dftd3 package: install it "
                         "with pip install 'stackview[pel]'") from exc
    from ase.calculators.mixing import SumCalculator

    return SumCalculator([chg, DFTD3(method="PBE", damping="d3bj")])


def calculator_provenance(name: str) -> dict:
    """Versions and licences of the packages behind a named calculator."""
    from importlib import metadata

    pkgs = ["chgnet", "torch", "ase"] + (["dftd3"] if name == "chgnet+d3" else [])
    out = {}
    for p in pkgs:
        try:
            version = metadata.version(p)
        except metadata.PackageNotFoundError:
            version = None
        out[p] = {"version": version, "licence": _LICENCES.get(p, "")}
    info = {"name": name, "packages": out,
            "potential": "CHGNet universal potential (weights shipped in the chgnet package; "
                         "fitted to PBE/PBE+U Materials Project data)"}
    if name == "chgnet+d3":
        info["dispersion"] = "DFT-D3 with Becke-Johnson damping, PBE parameters (dftd3)"
    else:
        info["dispersion"] = None
    try:  # the pretrained weights CHGNet.load() picks by default
        import inspect

        from chgnet.model import CHGNet

        default = inspect.signature(CHGNet.load).parameters["model_name"].default
        info["model"] = f"CHGNet {default} (pretrained weights shipped in the chgnet wheel)"
    except (ImportError, KeyError, ValueError, TypeError):
        pass
    return info


# --- one point ---------------------------------------------------------------------------------
def point_energy(material: Material, slip_A, calc, settings: PelSettings) -> dict:
    """Energy (eV per cell), relaxed mid-plane spacing (Å) and optimiser info at one slip."""
    atoms = bilayer_cell(material, slip_A, settings.interlayer_A, settings.vacuum_A,
                         settings.family)
    atoms.calc = calc
    steps, converged = 0, True
    if settings.relax == "z":
        from ase.constraints import FixCartesian
        from ase.optimize import BFGS

        atoms.set_constraint(FixCartesian(range(len(atoms)), mask=(True, True, False)))
        opt = BFGS(atoms, logfile=None)
        converged = bool(opt.run(fmax=settings.fmax_eV_A, steps=settings.max_steps))
        steps = int(opt.nsteps)
    energy = float(atoms.get_potential_energy())
    tags = atoms.get_tags()
    z = atoms.positions[:, 2]
    spacing = float(z[tags == 1].mean() - z[tags == 0].mean())
    return {"energy_eV": energy, "spacing_A": spacing, "steps": steps, "converged": converged}


#: how each family's bilayer is built (recorded in the provenance)
_STACKING = {
    "parallel": "top layer = bottom layer translated by D (same orientation; 3R family)",
    "antiparallel": "top layer = bottom layer turned by 180° about its metal atom (basis atom 0), "
                    "then translated by D (2H family); D = top metal − bottom metal",
}

_WORKER: dict = {}


def _worker_init(calculator, threads: int) -> None:
    _set_torch_threads(threads)
    warnings.simplefilter("ignore")
    _WORKER["calc"] = _build(calculator)


def _build(calculator):
    if isinstance(calculator, str):
        return make_calculator(calculator)
    if callable(calculator) and not hasattr(calculator, "get_potential_energy"):
        return calculator()
    return calculator


def _worker_point(material: Material, slip_A, settings: PelSettings) -> dict:
    return point_energy(material, slip_A, _WORKER["calc"], settings)


# --- the job -----------------------------------------------------------------------------------
def compute_landscape(
    material: Material | str,
    settings: PelSettings | None = None,
    calculator="chgnet+d3",
    workers: int = 1,
    threads: int = 1,
    points: list[tuple[int, int]] | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
    command: str | None = None,
) -> Landscape:
    """Compute the PEL of ``material``'s slip-stacked bilayer (see module docstring).

    Parameters
    ----------
    material
        Material or its name.
    settings
        Grid and relaxation (default :class:`PelSettings`).
    calculator
        A name from :data:`CALCULATORS`, an ASE calculator, or a zero-argument factory that
        returns one (needed for ``workers > 1`` with a custom calculator: it must be picklable,
        e.g. a module-level function).
    workers
        Processes evaluating grid points in parallel (each builds its own calculator).
    threads
        Torch threads per worker (1 is best: more threads per small cell only contend).
    points
        Only these grid indices ``(i, j)`` (and their symmetry images) are computed; the rest
        of the grid is NaN — for quick checks; :class:`Landscape` needs a complete grid, so the
        result is then a :class:`PartialLandscape` (same attributes, NaN where not computed).
    progress, cancel
        Job protocol of :mod:`stackview.engine.jobs`.
    command
        The command line recorded in the provenance.

    Returns
    -------
    Landscape
        Energies in meV per cell relative to the minimum.
    """
    material = get_material(material)
    settings = settings or PelSettings()
    cancel = cancel or CancelToken()
    if workers < 1 or workers > 256:
        raise UsageError(f"workers must be between 1 and 256, not {workers}")
    if threads < 1 or threads > 256:
        raise UsageError(f"threads must be between 1 and 256, not {threads}")
    n = settings.grid
    ops = slip_symmetry_ops(material, family=settings.family)
    reps = grid_orbits((n, n), ops)
    wanted = np.unique(reps)
    if points is not None:
        chosen = {int(reps[i % n, j % n]) for i, j in points}
        wanted = np.array(sorted(chosen))
    if isinstance(calculator, str):
        calc_info = calculator_provenance(calculator)
    else:
        calc_info = {"name": getattr(calculator, "__name__", type(calculator).__name__),
                     "custom": True}
    slips = {int(k): material.cartesian_to_slip(
        np.array([k // n, k % n]) / n @ material.cell_2d) for k in wanted}
    results: dict[int, dict] = {}
    total = len(wanted)
    progress(0, total, "starting")
    t0 = time.perf_counter()
    if workers == 1:
        with _torch_threads(threads), warnings.catch_warnings():
            calc = _build(calculator)
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
            for done, k in enumerate(wanted, start=1):
                cancel.check()
                results[int(k)] = point_energy(material, slips[int(k)], calc, settings)
                progress(done, total, f"point {done}/{total}")
    else:
        if not isinstance(calculator, str) and hasattr(calculator, "get_potential_energy"):
            raise UsageError("parallel workers need a calculator name or factory, not an "
                             "instance (each worker builds its own)")
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=min(workers, total), mp_context=ctx,
                                    initializer=_worker_init,
                                    initargs=(calculator, threads)) as pool:
            futures = {pool.submit(_worker_point, material, slips[int(k)], settings): int(k)
                       for k in wanted}
            try:
                for done, fut in enumerate(cf.as_completed(futures), start=1):
                    if cancel.cancelled:
                        break
                    results[futures[fut]] = fut.result()
                    progress(done, total, f"point {done}/{total}")
            finally:
                if cancel.cancelled or len(results) < total:
                    pool.shutdown(wait=True, cancel_futures=True)
            cancel.check()
    seconds = time.perf_counter() - t0
    energy_eV = np.full((n, n), np.nan)
    spacing = np.full((n, n), np.nan)
    for idx, rep in np.ndenumerate(reps):
        r = results.get(int(rep))
        if r is not None:
            energy_eV[idx] = r["energy_eV"]
            spacing[idx] = r["spacing_A"]
    unconverged = sum(not r["converged"] for r in results.values())
    e_min = float(np.nanmin(energy_eV))
    provenance = {
        "format": PEL_FORMAT,
        "source": "computed",
        "material": _material_record(material),
        "family": settings.family,
        "stacking": _STACKING[settings.family],
        "grid": [n, n],
        "energy_unit": f"meV per cell ({2 * material.n_atoms} atoms, area "
                       f"{material.area_A2:.4f} Å²), relative to the grid minimum",
        "minimum_energy_eV_per_cell": e_min,
        "relax": settings.relax,
        "relaxation": {
            "mode": "z coordinates of all atoms relaxed, in-plane fixed (BFGS)"
            if settings.relax == "z" else "rigid layers, no relaxation",
            "fmax_eV_A": settings.fmax_eV_A, "max_steps": settings.max_steps,
            "interlayer_start_A": settings.interlayer_A or material.interlayer_A,
            "unconverged_points": unconverged,
            "steps_total": sum(r["steps"] for r in results.values()),
        },
        "vacuum_A": settings.vacuum_A,
        "symmetry": {"operations": [o.tolist() for o in ops],
                     "points_computed": total, "points_in_grid": n * n},
        "calculator": calc_info,
        "workers": workers, "threads_per_worker": threads,
        "seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "stackview_version": _version(),
        "command": command,
    }
    notes = []
    start = settings.interlayer_A or material.interlayer_A
    if settings.relax == "z" and np.nanmax(spacing) > start + 2.0:
        notes.append(f"the layers drifted apart (spacing up to {np.nanmax(spacing):.2f} Å from "
                     f"{start:.2f} Å): the calculator does not bind them, so the landscape is "
                     "not meaningful (add a dispersion correction, or use relax='none')")
        log.warning(notes[-1])
    provenance["notes"] = notes
    if unconverged:
        log.warning("%d of %d PEL points did not converge in %d steps", unconverged, total,
                    settings.max_steps)
    energy_meV = (energy_eV - e_min) * 1000.0
    if points is not None:
        return PartialLandscape(material, energy_meV, spacing, provenance)
    return Landscape(material, energy_meV, spacing, provenance)


@contextlib.contextmanager
def _torch_threads(threads: int):
    """Run with ``threads`` torch threads, restoring the caller's setting afterwards."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _set_torch_threads(threads: int) -> None:
    """Set torch's thread count when torch is importable (the default calculator uses it)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


@dataclass(frozen=True, eq=False)
class PartialLandscape:
    """Result of :func:`compute_landscape` with ``points``: NaN where not computed."""

    material: Material
    energy_meV: np.ndarray
    spacing_A: np.ndarray
    provenance: dict

    def value_at_frac(self, frac_a: float, frac_b: float) -> float:
        n = self.energy_meV.shape[0]
        return float(self.energy_meV[round(frac_a * n) % n, round(frac_b * n) % n])

"""Benchmark: interlayer PEL of the MoS2 bilayer (12×12) with CHGNet ± DFT-D3, and D3 cost.

Runs, each on a 12×12 grid (19 symmetry-distinct points for MoS2): z relaxed with CHGNet + D3
(the default), z relaxed with CHGNet alone (no interlayer binding: the layers drift apart), and
rigid with CHGNet + D3 at the material's interlayer distance. Reported per run: seconds, BFGS
steps, AA (0,0), saddle (1/2,1/2) and AB (1/3,2/3) energies in meV/cell, spacing range. Also the
cost of one energy+forces call of each calculator part (CHGNet, dftd3's D3(BJ), and torch-dftd /
tad-dftd3 when installed) on the MoS2 (6 atoms) and ReS2 (24 atoms) bilayer cells. One torch
thread. Writes benchmarks/results/bench_pel.json.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/bench_pel.py [--grid 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np


def _call_cost(calc, atoms, repeats: int = 5) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_forces()
    times = []
    for k in range(repeats):
        atoms.positions[:, 2] += 0.001 * (k + 1)
        t = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=12)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_pel.json"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from stackview.pel import compute as pel
    from stackview.pel.landscape import PelSettings

    pel._set_torch_threads(1)
    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "torch_threads": 1, "grid": args.grid, "runs": [], "call_cost_s": {}}
    for calc_name, relax in (("chgnet+d3", "z"), ("chgnet", "z"), ("chgnet+d3", "none")):
        load = os.getloadavg()[0]
        t = time.perf_counter()
        land = pel.compute_landscape("MoS2", PelSettings(grid=args.grid, relax=relax),
                                     calculator=calc_name)
        seconds = time.perf_counter() - t
        s = land.spacing_A
        run = {"calculator": calc_name, "relax": relax, "seconds_total": round(seconds, 2),
               "seconds_points": land.provenance["seconds"],
               "points_computed": land.provenance["symmetry"]["points_computed"],
               "bfgs_steps": land.provenance["relaxation"]["steps_total"],
               "AA_meV": round(land.value_at_frac(0, 0), 2),
               "saddle_meV": round(land.value_at_frac(0.5, 0.5), 2),
               "AB_meV": round(land.value_at_frac(1 / 3, 2 / 3), 2),
               "span_meV": round(land.span_meV, 2),
               "spacing_A": [round(float(np.nanmin(s)), 3), round(float(np.nanmax(s)), 3)],
               "notes": land.provenance["notes"], "load_before": round(load, 2)}
        results["runs"].append(run)
        print(json.dumps(run))

    cells = {"MoS2": pel.bilayer_cell("MoS2", (0.3, 0.4)),
             "ReS2": pel.bilayer_cell("ReS2", (0.3, 0.4))}
    parts = {"chgnet": lambda: pel.make_calculator("chgnet")}
    try:
        from dftd3.ase import DFTD3

        parts["dftd3 D3(BJ)"] = lambda: DFTD3(method="PBE", damping="d3bj")
    except ImportError:
        pass
    try:
        from torch_dftd.torch_dftd3_calculator import TorchDFTD3Calculator

        parts["torch-dftd D3(BJ)"] = lambda: TorchDFTD3Calculator(device="cpu", damping="bj",
                                                                 xc="pbe")
    except ImportError:
        pass
    for name, factory in parts.items():
        calc = factory()
        results["call_cost_s"][name] = {m: round(_call_cost(calc, a), 4) for m, a in cells.items()}
        print(name, results["call_cost_s"][name])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

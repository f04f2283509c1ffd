"""Benchmark of stackview.simulation: incoherent patches/s, a 1024² image, a multislice patch.

Run from the repository root::

    python benchmarks/bench_simulate.py                  # everything (multislice: ~20-30 min)
    python benchmarks/bench_simulate.py --skip-multislice

Writes ``benchmarks/results/bench_simulate.json`` (numbers + machine) and, unless skipped,
``benchmarks/results/multislice_ReS2_2nm.npz`` (the multislice image, reused by
``benchmarks/validate_simulation.py``). Timings are wall-clock medians of repeated runs after a
warm-up (cached probe/kernels), plus the process CPU time (all threads), which is what the
wall time would be on an idle core and is recorded because this machine may be shared (the
load average at the start is recorded too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stackview.materials import build_stack, get_material, stack_arrays  # noqa: E402
from stackview.simulation import (  # noqa: E402
    PRESETS,
    probe_tail_radius_A,
    render_incoherent_batch,
    simulate,
)

RESULTS = ROOT / "benchmarks" / "results"
logger = logging.getLogger("bench_simulate")


def _timeit(fn, repeat: int) -> dict:
    """Wall-clock median/best and the median process CPU time (all threads) of ``fn()``."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeat):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {
        "median_s": statistics.median(times),
        "best_s": min(times),
        "cpu_s": statistics.median(cpu),
        "repeat": repeat,
    }


def _machine() -> dict:
    import scipy

    try:
        import abtem

        abtem_version = abtem.__version__
    except ImportError:  # pragma: no cover
        abtem_version = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "abtem": abtem_version,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _patch_items(material: str, optics, n: int, size_A: float, seed: int):
    """n random-slip bilayer patches as (positions_xy, numbers) arrays (materials fast path)."""
    rng = np.random.default_rng(seed)
    mat = get_material(material)
    margin = probe_tail_radius_A(optics) + 2.0
    items = []
    for _ in range(n):
        slip = rng.uniform(0, 1, 2) * [mat.a_A, mat.b_A]
        arr = stack_arrays(mat, [tuple(slip)], fov_A=(size_A, size_A), margin_A=margin)
        items.append((arr.positions[:, :2], arr.numbers))
    return items


def bench_patches(material: str, preset: str, n_batch: int, repeat: int) -> dict:
    optics = PRESETS[preset]
    size_A, sampling = 20.0, 0.1
    shape = (200, 200)
    items = _patch_items(material, optics, n_batch, size_A, seed=1)
    out: dict = {
        "material": material,
        "preset": preset,
        "patch": "2 nm x 2 nm at 0.1 Å/px (200 x 200 px), bilayer, random slip",
        "atoms_per_patch": int(np.mean([len(i[1]) for i in items])),
    }
    # single patches through the full interface, structure prebuilt
    atoms = build_stack(material, slips_A=[(1.0, 1.5)], fov_A=(size_A, size_A), margin_A=10.0)
    t = _timeit(lambda: simulate(atoms, optics, sampling, size_A), repeat=max(20, repeat * 10))
    out["single_simulate_s"] = t["median_s"]
    out["single_simulate_patches_per_s"] = 1.0 / t["median_s"]
    out["single_simulate_patches_per_cpu_s"] = 1.0 / t["cpu_s"]
    # batched render of prebuilt position arrays
    for workers in (1, os.cpu_count() or 1):
        t = _timeit(
            lambda w=workers: render_incoherent_batch(items, optics, sampling, shape, workers=w),
            repeat,
        )
        out[f"batch{n_batch}_workers{workers}_patches_per_s"] = n_batch / t["median_s"]
        out[f"batch{n_batch}_workers{workers}_patches_per_cpu_s"] = n_batch / t["cpu_s"]
    # end to end: build the structures (materials.stack_arrays) and render them

    def end_to_end():
        its = _patch_items(material, optics, n_batch, size_A, seed=2)
        render_incoherent_batch(its, optics, sampling, shape)

    t = _timeit(end_to_end, repeat)
    out[f"batch{n_batch}_with_structure_building_patches_per_s"] = n_batch / t["median_s"]
    out[f"batch{n_batch}_with_structure_building_patches_per_cpu_s"] = n_batch / t["cpu_s"]
    return out


def bench_1024(repeat: int) -> dict:
    optics = PRESETS["ReS2-300kV"]
    sampling = 0.12  # the paper's ReS2 sampling, 0.012 nm/px
    fov = 1024 * sampling
    t0 = time.perf_counter()
    atoms = build_stack("ReS2", slips_A=[(1.0, 1.5)], fov_A=(fov, fov), margin_A=10.0)
    build_s = time.perf_counter() - t0
    pos, num = atoms.positions[:, :2].copy(), atoms.numbers.copy()
    render = _timeit(
        lambda: render_incoherent_batch([(pos, num)], optics, sampling, (1024, 1024)), repeat
    )
    full = _timeit(lambda: simulate(atoms, optics, sampling, fov), repeat)
    cold = simulate(atoms, optics.replace(defocus_A=41.0), sampling, fov)
    return {
        "image": "1024 x 1024 px at 0.12 Å/px (12.3 nm), ReS2 bilayer, ReS2-300kV",
        "n_atoms": len(atoms),
        "render_s": render["median_s"],
        "render_best_s": render["best_s"],
        "render_cpu_s": render["cpu_s"],
        "simulate_s": full["median_s"],
        "simulate_cpu_s": full["cpu_s"],
        "first_call_new_optics_s": cold.metadata["elapsed_s"],
        "structure_build_s": build_s,
        "padded_grid": cold.metadata["method_details"]["padded_shape"],
    }


def bench_multislice() -> dict:
    optics = PRESETS["ReS2-300kV"]
    size_A, sampling = 20.0, 0.1
    atoms = build_stack("ReS2", slips_A=[(1.0, 1.5)], fov_A=(size_A, size_A), margin_A=10.0)
    last = [0.0]

    def progress(done, total):
        now = time.perf_counter()
        if now - last[0] > 60 or done == total:
            logger.info("multislice: %d / %d tasks", done, total)
            last[0] = now

    t0 = time.perf_counter()
    c0 = time.process_time()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = simulate(atoms, optics, sampling, size_A, method="multislice", progress=progress)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    details = result.metadata["method_details"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        RESULTS / "multislice_ReS2_2nm.npz",
        image=result.image,
        metadata=json.dumps(result.metadata),
    )
    n_pos = details["scan_gpts"][0] * details["scan_gpts"][1]
    return {
        "patch": "2 nm x 2 nm at 0.1 Å/px, ReS2 bilayer (1.0, 1.5) Å, ReS2-300kV",
        "seconds": elapsed,
        "cpu_seconds_all_threads": cpu,
        "loadavg_1min_start_end": [load0, load1],
        "probe_positions": n_pos,
        "ms_per_position": 1e3 * elapsed / n_pos,
        "details": details,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-multislice", action="store_true")
    parser.add_argument("--batch", type=int, default=64, help="patches per batch")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "bench_simulate.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("stackview").setLevel(logging.WARNING)

    report: dict = {"machine": _machine(), "command": "python benchmarks/bench_simulate.py"}
    report["incoherent_patch"] = [
        bench_patches("ReS2", "ReS2-300kV", args.batch, args.repeat),
        bench_patches("MoS2", "MoS2-60kV", args.batch, args.repeat),
    ]
    for row in report["incoherent_patch"]:
        logger.info(json.dumps(row, indent=1))
    report["incoherent_1024"] = bench_1024(args.repeat)
    logger.info(json.dumps(report["incoherent_1024"], indent=1))
    if not args.skip_multislice:
        report["multislice_patch"] = bench_multislice()
        logger.info(json.dumps(report["multislice_patch"], indent=1))
    else:
        previous = Path(args.out)
        if previous.exists():  # keep the last multislice measurement
            old = json.loads(previous.read_text())
            if "multislice_patch" in old:
                report["multislice_patch"] = old["multislice_patch"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

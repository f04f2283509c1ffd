"""Benchmark of the DRIT style model on this machine → ``benchmarks/results/bench_style.json``.

Measures, for the ``cpu`` configuration (and the ``paper`` one for comparison):

- seconds per 1024² translation (whole image, content encoder + generator, inference mode;
  the paper reports ~1 s on a GPU; the goal here is <= 2 s on the CPU);
- seconds per training iteration (one encoder/generator update plus the discriminator and
  content-discriminator updates, batch 2 per domain, augmentation included);

each as the minimum and median of several repeats (the machine may be shared), with 1 and with
all torch threads. Run: ``python benchmarks/bench_style.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stackview import __version__  # noqa: E402
from stackview.io.atomic import write_text_atomic  # noqa: E402
from stackview.style.config import PRESETS  # noqa: E402
from stackview.style.networks import DRIT  # noqa: E402
from stackview.style.trainer import StyleTrainer  # noqa: E402
from stackview.style.translate import StyleTranslator  # noqa: E402


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "memory_GiB": mem_gib,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
        "stackview": __version__,
    }


def _stats(times: list[float], cpu: list[float]) -> dict:
    """Wall-clock min/median, and the process CPU time (all threads) of the median repeat —
    with one thread the CPU time is what the work costs even when the machine is shared."""
    return {
        "min_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "cpu_median_s": round(statistics.median(cpu), 4),
        "repeats": len(times),
    }


def bench_translate(cfg, size: int, repeats: int, bf16: bool = False) -> dict:
    torch.manual_seed(0)
    tr = StyleTranslator(DRIT(cfg, discriminators=False), bf16=bf16)
    img = np.random.default_rng(0).random((size, size), dtype=np.float32)
    tr.translate(img[:256, :256])  # warm-up (oneDNN primitives)
    tr.translate(img)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        tr.translate(img)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return _stats(times, cpu)


def bench_train(cfg, repeats: int, warmup: int = 3) -> dict:
    rng = np.random.default_rng(0)
    side = 512
    imgs = [rng.random((side, side), dtype=np.float32) for _ in range(2)]
    tr = StyleTrainer(cfg, imgs, imgs, seed=0)
    for _ in range(warmup):
        tr.step()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        tr.step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return _stats(times, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no paper config")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_style.json"))
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    all_threads = torch.get_num_threads()
    result = {
        "benchmark": "bench_style",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "results": {},
    }
    configs = ["cpu"] if args.quick else ["cpu", "paper"]
    for name in configs:
        cfg = PRESETS[name]
        entry = {
            "config": cfg.to_dict(),
            "translator_parameters": sum(v.numel() for v in DRIT(cfg, False).state_dict().values()),
        }
        for threads in sorted({1, all_threads}):
            torch.set_num_threads(threads)
            key = f"threads_{threads}"
            n = repeats if name == "cpu" else 2
            entry[key] = {
                "translate_1024_s": bench_translate(cfg, 1024, n),
                "translate_1024_bf16_s": bench_translate(cfg, 1024, n, bf16=True),
            }
            if name == "cpu":
                entry[key]["train_iteration_s"] = bench_train(cfg, repeats * 3)
            print(name, key, json.dumps(entry[key]), flush=True)
        torch.set_num_threads(all_threads)
        result["results"][name] = entry
    result["machine"]["load_average_end"] = list(os.getloadavg())
    write_text_atomic(args.out, json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Benchmark: memory and time of `stackview analyze` on a large image (issue 15, item 4).

An 8504² px 8-bit PNG of a ReS2 bilayer (slip (1.2, 2.4) Å, 0.00376 nm/px: 32 nm, rotated 17°,
Poisson dose 30) is made once (cached under benchmarks/.corpus/, ~70 s) with the tests'
degraded-image generator, then `stackview analyze --stride 2` runs in a fresh process;
reported: wall time, peak resident memory (ru_maxrss of the child), the stage times from
summary.json, and the reading. Goal: ≤ 6 GB and ≤ 60 s on the 2-core development machine.
Writes benchmarks/results/bench_large_image.json.

    python benchmarks/bench_large_image.py [--size 8504] [--stride 2] [--views 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_image(size: int, path: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from lattice_images import degraded_image
    from PIL import Image

    img = degraded_image(slip_A=(1.2, 2.4), out_px=size, pixel_nm=0.00376, rotation_deg=17.0,
                         dose=30, fine_A=0.15)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.astype(np.uint8)).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8504)
    ap.add_argument("--stride", type=float, default=2.0)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_large_image.json"))
    args = ap.parse_args()
    image = HERE / ".corpus" / f"large_ReS2_{args.size}.png"
    if not image.exists():
        make_image(args.size, image)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", "import sys; from stackview.cli import main; "
               "sys.exit(main())", "analyze", str(image), "--material", "ReS2",
               "--stride", str(args.stride), "--views", str(args.views), "--out", tmp]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = json.loads((Path(tmp) / image.stem / "summary.json").read_text())
    result = {
        "image_px": [args.size, args.size], "image_mb_float32": args.size ** 2 * 4 / 2**20,
        "stride_nm": args.stride, "views": args.views, "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb), "stage_seconds": summary["stage_seconds"],
        "n_windows": summary["n_patches"], "pixel_size_nm": summary["pixel_size_nm"],
        "truth": {"pixel_size_nm": 0.00376, "Da_A": 1.2, "Db_A": 2.4},
        "Da_A_median": summary["Da_A_median"], "Db_A_median": summary["Db_A_median"],
        "reliable": summary["reliable"],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "command": " ".join(["python", "benchmarks/bench_large_image.py", *sys.argv[1:]]),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Time and peak memory of the analysis figure (``export.write_figure``) for a large image.

Writes benchmarks/results/bench_figure.json.

    python benchmarks/bench_figure.py            # an 8504² float32 image (a 32 nm field)
    python benchmarks/bench_figure.py 4096       # another size

Measured on the shared 2-core machine (matplotlib imported beforehand, so its import is not
counted; a 2 nm-stride map of 15 × 15 windows, half of them below the poor-window NCC, marked
unreliable): drawn at full resolution (the figure before block-averaging) 25.1 s and a
tracemalloc peak of 4072 MiB (max RSS +4.1 GB); block-averaged to at most
``FIGURE_MAX_PX`` = 1024 px a side, 1.8–2.0 s and 53–57 MiB (max RSS +70 MiB).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np


def main(n: int = 8504) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stackview.analysis.export import write_figure
    from stackview.inference.spm import SpmMap

    plt.close(plt.figure())  # import and set up matplotlib before measuring
    field_nm, stride, window = 32.0, 2.0, 2.05
    rng = np.random.default_rng(0)
    image = rng.standard_normal((n, n), dtype=np.float32)
    xs = np.arange(window / 2, field_nm - window / 2 + 1e-9, stride)
    values = rng.normal(size=(len(xs), len(xs), 2))
    unc = np.abs(rng.normal(size=(len(xs), len(xs))))
    ncc = rng.uniform(0, 1, size=(len(xs), len(xs)))
    xx, yy = np.meshgrid(xs, xs)
    points = np.column_stack([xx.ravel(), yy.ravel(), values.reshape(-1, 2), unc.ravel(),
                              np.zeros(xx.size)])
    smap = SpmMap(xs, xs, values, unc, ("Da_A", "Db_A"), window, stride, "window", points,
                  ncc=ncc, ncc_points=ncc.ravel())
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with TemporaryDirectory() as tmp:
        tracemalloc.start()
        start = time.perf_counter()
        write_figure(Path(tmp) / "figure.png", image, field_nm / n, smap, title="large",
                     reliable=False, reliability_reason="a benchmark")
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{n}² float32 image ({image.nbytes / 2**20:.0f} MiB): write_figure {seconds:.2f} s, "
          f"tracemalloc peak {peak / 2**20:.0f} MiB, max RSS +{(rss1 - rss0) / 1024:.0f} MiB")
    out = Path(__file__).parent / "results" / "bench_figure.json"
    out.write_text(json.dumps({
        "image_px": [n, n], "seconds": round(seconds, 2),
        "tracemalloc_peak_mib": round(peak / 2**20), "max_rss_increase_mib":
            round((rss1 - rss0) / 1024),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "command": " ".join(["python", "benchmarks/bench_figure.py", *sys.argv[1:]]),
        "before": "full-resolution drawing (before block-averaging): 25.1 s, tracemalloc "
                  "peak 4072 MiB, max RSS +4.1 GB (measured once on the old export.py)"},
        indent=2) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8504)

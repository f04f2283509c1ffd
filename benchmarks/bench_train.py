"""Training and inference throughput of the stacking regressor on this machine's CPU (or GPU).

For each backbone × input size × precision × memory format it times full training steps (forward,
symmetric loss, backward, Adam) exactly as :func:`stackview.inference.train.train` runs them, and
eval-mode inference, and writes ``benchmarks/results/bench_train.json``. The machine's load
average is recorded with the numbers: on a shared machine they are lower bounds.

    python benchmarks/bench_train.py                 # the default grid (~10 min on 2 cores)
    python benchmarks/bench_train.py --quick         # resnet18 only, small sizes
    python benchmarks/bench_train.py --backbones resnet18 --sizes 96 128 --threads 2
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

import torch

from stackview.inference.loss import make_loss
from stackview.inference.regressor import RegressorSpec, build_regressor
from stackview.io.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "bench_train.json"


def time_config(backbone: str, size_px: int, precision: str, channels_last: bool,
                batch: int, steps: int, device: str) -> dict:
    spec = RegressorSpec(backbone=backbone, task="slip", material="ReS2")
    model = build_regressor(spec, seed=0).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = make_loss(spec.label_space()).to(device)
    x = torch.rand(batch, 1, size_px, size_px, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 2, device=device) * 3
    dtype = torch.bfloat16 if precision == "bf16" else None
    dev_type = torch.device(device).type

    def sync():
        if dev_type == "cuda":
            torch.cuda.synchronize()

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev_type, dtype=dtype, enabled=dtype is not None):
            pred = model(x)
        loss = loss_fn(pred.float(), y)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(2):
        train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync()
    train_s = (time.perf_counter() - t0) / steps
    model.eval()
    with torch.no_grad(), torch.autocast(dev_type, dtype=dtype, enabled=dtype is not None):
        model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
        infer_s = (time.perf_counter() - t0) / steps
    return {
        "backbone": backbone, "size_px": size_px, "precision": precision,
        "channels_last": channels_last, "batch": batch, "steps_timed": steps,
        "train_images_per_s": round(batch / train_s, 2),
        "infer_images_per_s": round(batch / infer_s, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--formats", nargs="+", default=["contiguous", "channels_last"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="interleaved repetitions of the grid")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="resnet18 at 64 and 128 px only")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.quick:
        args.backbones, args.sizes = ["resnet18"], [64, 128]
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = round(os.getloadavg()[0], 2)
    configs = [(b, s, p, f) for b in args.backbones for s in args.sizes
               for p in args.precisions for f in args.formats]
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    # interleaved rounds: on a shared machine the best round approximates the idle machine and
    # the median shows what a busy one gives
    for r in range(args.rounds):
        for backbone, size, precision, fmt in configs:
            row = time_config(backbone, size, precision, fmt == "channels_last",
                              args.batch, args.steps, args.device)
            runs[(backbone, size, precision, fmt)].append(row)
            print(f"round {r + 1} {backbone:9s} {size:4d} px {precision:4s} {fmt:13s} "
                  f"train {row['train_images_per_s']:7.2f} img/s  "
                  f"infer {row['infer_images_per_s']:7.2f} img/s  "
                  f"(load {row['load_average_after']})", flush=True)
    rows = []
    for (backbone, size, precision, fmt), got in runs.items():
        train_v = sorted(g["train_images_per_s"] for g in got)
        infer_v = sorted(g["infer_images_per_s"] for g in got)
        rows.append({
            "backbone": backbone, "size_px": size, "precision": precision,
            "channels_last": fmt == "channels_last", "batch": args.batch,
            "steps_timed": args.steps, "rounds": len(got),
            "train_images_per_s_best": train_v[-1],
            "train_images_per_s_median": statistics.median(train_v),
            "infer_images_per_s_best": infer_v[-1],
            "infer_images_per_s_median": statistics.median(infer_v),
            "train_images_per_s_rounds": [g["train_images_per_s"] for g in got],
            "infer_images_per_s_rounds": [g["infer_images_per_s"] for g in got],
            "load_averages": [g["load_average_after"] for g in got],
        })
    device = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
              else f"CPU {platform.processor() or platform.machine()}")
    result = {
        "device": device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "load_average_start": load_start, "command": " ".join(
            ["python", "benchmarks/bench_train.py", *(sys.argv[1:] if argv is None else argv)]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": rows,
        "note": "shared machine: other processes were running; numbers are lower bounds",
    }
    write_text_atomic(args.out, json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

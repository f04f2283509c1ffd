"""Benchmark: how a model of both stacking families should decide the family of a window.

Two ways, on held-out windows of a ``--family both`` test set (issue 17):

* ``logit``: the family head's probability (what the analysis reports);
* ``resimulation``: the network's slip read in *each* family (the parallel reading from the
  cosine features, the antiparallel one from cosines and sines), each re-simulated noise-free
  and compared with the window (the best view over the label's orbit, as the analysis scores
  windows); the family with the higher NCC wins — the "one model per family with a chooser by
  re-simulation agreement" design, with the two per-family readings taken from one network.

Reported per way: family accuracy, ΔD mean over the windows whose family is right, seconds
per window. Writes benchmarks/results/bench_family_chooser_<model>.json.

    python benchmarks/bench_family_chooser.py --model MoS2_slip_bilayer \
        --dataset mos2_test.zarr [--n 400]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="MoS2_slip_bilayer")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from stackview.analysis.analyze import optics_for_card
    from stackview.analysis.trust import Resimulator
    from stackview.datasets.store import open_dataset
    from stackview.models.bundle import load_bundle
    from stackview.models.registry import find_model

    bundle = load_bundle(find_model(args.model))
    card, model = bundle.card, bundle.model.eval()
    space = bundle.label_space
    ds = open_dataset(args.dataset)
    n = min(args.n, len(ds))
    images = np.asarray(ds.images[:n], dtype=np.float32)
    true = np.asarray(ds.labels[:n], dtype=float)

    t0 = time.perf_counter()
    with torch.no_grad():
        raw = torch.cat([model.forward_normalised(torch.from_numpy(images[s:s + 64]))
                         for s in range(0, n, 64)]).double()
    dec = model.decoder
    nc = dec.feats.n_cos
    frac_par, _ = dec._solve(raw[:, 1:1 + nc], False)
    frac_anti, _ = dec._solve(raw[:, 1:], True)
    lengths = np.asarray(space.lengths_A)
    read = {"parallel": space.family_space("parallel").canonical(frac_par.numpy() * lengths),
            "antiparallel": space.family_space("antiparallel").canonical(
                frac_anti.numpy() * lengths)}
    p_anti = torch.sigmoid(raw[:, 0]).numpy()
    t_net = (time.perf_counter() - t0) / n

    resim = Resimulator(card.material, "slip", card.sampling_A, card.patch_px,
                        optics_for_card(card))
    t0 = time.perf_counter()
    ncc = np.zeros((n, 2))
    for i in range(n):
        for k, fam in enumerate(("parallel", "antiparallel")):
            ncc[i, k] = resim.ncc(images[i], np.r_[read[fam][i], float(k)])
    t_resim = (time.perf_counter() - t0) / n

    truth = (true[:, 2] >= 0.5).astype(int)
    out = {"model": card.name, "dataset": str(args.dataset), "n": int(n),
           "machine": f"{platform.machine()} CPU, {args.threads} threads"}
    for name, fam in (("logit", (p_anti >= 0.5).astype(int)),
                      ("resimulation", ncc.argmax(1))):
        right = fam == truth
        labels = np.c_[np.where(fam[:, None] == 1, read["antiparallel"], read["parallel"]), fam]
        dd = space.distance(labels, true)[right]
        out[name] = {"family_accuracy": float(right.mean()),
                     "mean_A_family_right": float(dd.mean()) if dd.size else None,
                     "seconds_per_window": round(t_net + (t_resim if name != "logit" else 0), 5)}
    # agreement of the two ways
    out["agree"] = float(np.mean((p_anti >= 0.5) == (ncc.argmax(1) == 1)))
    out["ncc_margin_median"] = float(np.median(np.abs(ncc[:, 1] - ncc[:, 0])))
    path = Path(args.out or Path(__file__).parent / "results"
                / f"bench_family_chooser_{card.name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

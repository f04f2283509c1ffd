"""Pilot: does a regressor on slip-invariant features learn faster than plain (Da, Db) regression?

Targets are cos 2π(h·fa + k·fb) for 10 (h, k) (fa = Da/|a|, fb = Db/|b|): smooth functions of
the slip, invariant under lattice translations and D → −D. Predictions are decoded by a table
search over the canonical domain. Trains resnet18 (bf16, channels-last) on a `stackview dataset
make` set for a time budget and prints the held-out ΔD every 100 steps.

    python benchmarks/pilot_invariant_head.py TRAIN.zarr VAL.zarr SECONDS
"""

import sys
import time

import numpy as np
import torch

from stackview.datasets.store import open_dataset
from stackview.core.labels import SlipLabels
from stackview.inference.regressor import build_backbone, standardise

torch.set_num_threads(2)
torch.manual_seed(0)
ds = open_dataset(sys.argv[1])
val = open_dataset(sys.argv[2])
sp = SlipLabels("ReS2")
L = sp.lengths_A
HK = np.array(
    [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2), (2, -1), (1, -2)], float
)


def feats(lab):
    f = np.asarray(lab) / L
    return np.cos(2 * np.pi * (f @ HK.T)).astype(np.float32)


# decoding table over the canonical domain
ga = np.linspace(0, 1, 201)[:-1]
gb = np.linspace(0, 0.5, 101)
G = np.stack(np.meshgrid(ga, gb, indexing="ij"), -1).reshape(-1, 2)
T = np.cos(2 * np.pi * (G @ HK.T))


def decode(p):
    d = ((p[:, None, :] - T[None]) ** 2).sum(-1)
    i = d.argmin(1)
    return G[i] * L


net = torch.nn.Sequential(
    build_backbone("resnet18"),
    torch.nn.ReLU(),
    torch.nn.Linear(1000, 512),
    torch.nn.ReLU(),
    torch.nn.Linear(512, len(HK)),
)
net = net.to(memory_format=torch.channels_last)
opt = torch.optim.Adam(net.parameters(), 1e-3)
vx, vy = val.get(np.arange(256))
vx = torch.from_numpy(vx).unsqueeze(1)
rng = np.random.default_rng(0)
t0 = time.time()
step = 0
budget = float(sys.argv[3])
while time.time() - t0 < budget:
    idx = rng.choice(len(ds), 32, replace=False)
    x, y = ds.get(idx)
    x = standardise(torch.from_numpy(x).unsqueeze(1)).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    loss = torch.nn.functional.mse_loss(out.float(), torch.from_numpy(feats(y)))
    opt.zero_grad()
    loss.backward()
    opt.step()
    step += 1
    if step % 100 == 0:
        net.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            p = net(standardise(vx).to(memory_format=torch.channels_last)).float().numpy()
        net.train()
        d = sp.distance(decode(p), vy)
        print(
            f"step {step} t {time.time() - t0:.0f}s loss {loss.item():.4f} "
            f"val mean dD {d.mean():.3f} median {np.median(d):.3f}",
            flush=True,
        )

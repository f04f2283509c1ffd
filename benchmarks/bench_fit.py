"""Benchmark: the physics fit (issue 18) — speed, calibrated uncertainty, multislice, the sample.

Five parts; all but the twist part with the bundled ``ReS2_slip_bilayer`` model's windows
(128² px at 0.16 Å/px):

* **coverage by dose** on held-out noisy simulations (a seed no tuning used): random slips over
  the canonical domain and random lattice origins, rendered by the project's grid simulator
  (``simulate`` on ``build_stack``), then degraded two ways at each dose (``dose_per_px``: counts
  per pixel at the clean image's maximum, as :class:`PhysicsNoise` counts them):

  - ``poisson``: shot noise alone — the fit's own noise model;
  - ``physics``: the project's physics-noise model with its training ranges (source blur,
    contrast gamma, scan jitter and drift, background, read noise) plus the dataset's atom
    jitter (±0.1 Å) and up to 5 % vacancies, which the fit does not model; the distortions
    displace the probe positions on a 4× finer simulation (:func:`physics_degrade`) rather
    than interpolating the window linearly as :class:`PhysicsNoise` does for training data.

  Each window is read by the network (one view) and then fitted from that reading; reported:
  the fraction of labels (Da and Db pooled) whose truth lies within ±1σ and ±2σ of the fit
  (for the default sandwich σ and the plain Laplace σ), the network's and the fit's median and
  95th-percentile ΔD, how often the fit is closer than the network, χ² and NCC medians;
* **multislice**: the project's abTEM multislice image (``multislice_ReS2_2nm.npz``, slip
  (1.0, 1.5) Å, 20 Å field at 0.1 Å/px) resampled to the model's sampling, clean and with shot
  noise at several doses (many noise draws): network against fit;
* **speed**: windows per second of the fit alone over each coverage set (one torch thread; the
  machine's load average is recorded, it is shared; windows with line jitter take a second
  fit with the rows' shifts and are slower);
* **twist**: the bundled ``MoS2_twist_bilayer`` model's windows (256² px at 0.25 Å/px),
  θ in [5°, 55°], turned at random, with shot noise: network against fit, coverage of σ_θ;
* **the bundled sample**: ``stackview analyze --fit`` on
  ``ReS2_bilayer_tedgen_sample4.png``: the fitted median against the network's and against the
  model-free re-simulation scan's optimum (from ``experimental_check.json``).

    python benchmarks/bench_fit.py [--n 150] [--seed 18] [--doses 20 50 200 1000]

Writes ``benchmarks/results/bench_fit.json``. About 8 minutes on one thread of this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).parent))


#: the physics set is simulated this many times finer than the windows, so scan distortions
#: move probe positions (point samples of the fine image) instead of interpolating the coarse
#: window linearly, which blurs each line by its own fractional shift (a blur no microscope has)
FINE = 4
#: coarse pixels simulated beyond each edge, so drift and jitter never sample outside
PAD_PX = 4


def simulate_windows(material, optics, n: int, px: int, sampling_A: float, rng,
                     jitter_xy_A: float = 0.0, vacancy_max: float = 0.0, fine: int = 1):
    """Clean windows (n, px, px) of random slips (canonical) and random lattice origins; with
    ``fine`` > 1 simulated ``fine`` times finer over the window plus :data:`PAD_PX` coarse
    pixels per side (n, (px + 2 PAD_PX) fine, ...)."""
    from stackview.core.labels import SlipLabels
    from stackview.materials import build_stack, get_material
    from stackview.simulation import simulate

    m = get_material(material)
    space = SlipLabels(m)
    (a0, a1), (b0, b1) = space.domain_bounds_A()
    truth = np.column_stack([rng.uniform(a0, a1, n), rng.uniform(b0, b1, n)])
    pad = PAD_PX if fine > 1 else 0
    side = (px + 2 * pad) * sampling_A
    out, shown = [], []
    for t in truth:
        origin = rng.random() * m.a_vec_A + rng.random() * m.b_vec_A
        common = dict(fov_A=(side, side), margin_A=10, origin_A=origin,
                      vacancy_ratio=float(rng.uniform(0, vacancy_max)),
                      seed=int(rng.integers(2**31)))
        atoms = build_stack(m, [t], jitter_xy_A=jitter_xy_A, **common)
        out.append(simulate(atoms, optics, sampling_A=sampling_A / fine,
                            fov_A=(side, side)).image)
        shown.append(t + _mean_slip_shift(m, optics, atoms, build_stack(m, [t], **common),
                                          side, pad * sampling_A)
                     if jitter_xy_A > 0 else t)
    return np.stack(out).astype(np.float32), truth, np.array(shown)


def _mean_slip_shift(material, optics, jittered, ideal, side_A: float, pad_A: float):
    """The slip the window's atoms show beyond their label: with every atom displaced at random
    (±0.1 Å), the top layer's mean position moves against the bottom's by ~0.01 Å, a rigid
    shift no image can tell from a different slip. Mean displacement per layer over the
    window's atoms, weighted by their cross-sections, in label units."""
    from stackview.simulation import adf_cross_sections

    inside = ((ideal.positions[:, :2] >= pad_A) & (ideal.positions[:, :2] <= side_A - pad_A)
              ).all(axis=1)
    disp = jittered.positions[:, :2] - ideal.positions[:, :2]  # same atoms, same order
    w = adf_cross_sections(ideal.numbers, optics) * inside
    tags = ideal.get_tags()
    mean = [np.average(disp[tags == k], axis=0, weights=w[tags == k]) for k in (0, 1)]
    return material.cartesian_to_slip(mean[1] - mean[0])


def physics_degrade(fine_images: np.ndarray, px: int, dose: float, rng, fine: int = FINE,
                    fixed: dict | None = None):
    """The project's physics-noise model (:class:`PhysicsNoise`, its training ranges from
    ``PHYSICS_RANGES``) applied as a microscope would: source blur and contrast gamma on the
    fine image, then the scan's probe positions — each line displaced by the drift and its own
    jitter — sampled from it (cubic spline, fine enough to be exact), then background, shot
    noise and read noise on the window's pixels, min-max normalised like PhysicsNoise."""
    from scipy import ndimage

    from stackview.datasets.generate import PHYSICS_RANGES
    from stackview.style.images import normalise

    out = np.empty((len(fine_images), px, px), np.float32)
    c = (fine - 1) / 2.0 + PAD_PX * fine
    for k, im in enumerate(fine_images):
        p = {key: float(rng.uniform(*r)) for key, r in PHYSICS_RANGES.items()
             if key not in ("dose_per_px", "drift_px")}
        drift = rng.uniform(*PHYSICS_RANGES["drift_px"], 2) * rng.choice([-1, 1], 2)
        if fixed:
            p.update({k: v for k, v in fixed.items() if k != "drift_px"})
            drift = np.asarray(fixed.get("drift_px", drift), dtype=float)
        a = normalise(im).astype(np.float64)
        if p["source_blur_px"] > 0:
            a = ndimage.gaussian_filter(a, p["source_blur_px"] * fine, mode="reflect")
        a = np.clip(a, 0, None) ** p["gamma"]
        t = (np.arange(px) / max(1, px - 1))[:, None]
        shift_c = drift[1] * t + p["scan_jitter_px"] * rng.standard_normal((px, 1))
        shift_r = drift[0] * t
        rows = (np.arange(px)[:, None] + shift_r) * fine + c + np.zeros((1, px))
        cols = (np.arange(px)[None, :] + shift_c) * fine + c
        a = ndimage.map_coordinates(a, [rows, cols], order=3, mode="reflect")
        counts = rng.poisson(dose * (np.clip(a, 0, None) + p["background"]))
        noisy = counts / dose + p["read_noise"] * rng.standard_normal(a.shape)
        out[k] = normalise(noisy)
    return out


def degrade(clean: np.ndarray, kind: str, dose: float, rng, px: int) -> np.ndarray:
    """Noisy windows: ``poisson`` (shot noise only, on the window's grid) or ``physics``
    (:func:`physics_degrade` from the fine images)."""
    from stackview.style.physics_noise import PhysicsNoise

    if kind == "physics":
        return physics_degrade(clean, px, dose, rng)
    noise = PhysicsNoise(dose_per_px=dose, background=0.0, read_noise=0.0, source_blur_px=0.0,
                         gamma=1.0, scan_jitter_px=0.0)
    return np.stack([noise.apply(im, rng=rng) for im in clean]).astype(np.float32)


def network_readings(bundle, windows: np.ndarray) -> np.ndarray:
    from stackview.inference.spm import _Runner

    values, _ = _Runner(bundle, n_views=1, batch_size=64)(windows)
    return values


def score(space, truth, start, res) -> dict:
    """Coverage and accuracy of one set of fitted windows."""
    _, best = space.residual(res.labels, truth)
    err = res.labels - best  # per label, against the truth's nearest equivalent
    z = err / res.sigma
    zl = err / res.sigma_laplace
    d_fit = np.asarray(space.distance(res.labels, truth))
    d_net = np.asarray(space.distance(start, truth))
    ok = np.isfinite(z).all(axis=1)
    return {
        "n": int(len(truth)), "n_fitted": int(ok.sum()),
        "within_1sigma": round(float(np.mean(np.abs(z[ok]) < 1)), 3),
        "within_2sigma": round(float(np.mean(np.abs(z[ok]) < 2)), 3),
        "within_1sigma_laplace": round(float(np.mean(np.abs(zl[ok]) < 1)), 3),
        "within_2sigma_laplace": round(float(np.mean(np.abs(zl[ok]) < 2)), 3),
        "z_rms": round(float(np.sqrt(np.mean(z[ok] ** 2))), 3),
        "sigma_median_A": round(float(np.median(res.sigma[ok])), 5),
        "sigma_laplace_median_A": round(float(np.median(res.sigma_laplace[ok])), 5),
        "network_dD_median_A": round(float(np.median(d_net)), 4),
        "network_dD_p95_A": round(float(np.percentile(d_net, 95)), 4),
        "fit_dD_median_A": round(float(np.median(d_fit[ok])), 4),
        "fit_dD_p95_A": round(float(np.percentile(d_fit[ok], 95)), 4),
        "fit_closer_fraction": round(float(np.mean(d_fit[ok] < d_net[ok])), 3),
        "chi2_red_median": round(float(np.median(res.chi2_red[ok])), 3),
        "ncc_median": round(float(np.median(res.ncc[ok])), 4),
        "dose_per_px_estimate_median": round(float(np.median(res.dose_per_px[ok])), 1),
        "converged_fraction": round(float(np.mean(res.converged)), 3),
    }


def coverage(bundle, fitter, optics, args) -> tuple[list[dict], dict]:
    rng = np.random.default_rng(args.seed)
    card = bundle.card
    space = fitter.space
    rows, speed = [], {}
    for kind in ("poisson", "physics"):
        t0 = time.perf_counter()
        phys = kind == "physics"
        clean, truth, shown = simulate_windows(card.material, optics, args.n, card.patch_px,
                                               card.sampling_A, rng,
                                               jitter_xy_A=0.1 if phys else 0.0,
                                               vacancy_max=0.05 if phys else 0.0,
                                               fine=FINE if phys else 1)
        sim_s = time.perf_counter() - t0
        for dose in args.doses:
            windows = degrade(clean, kind, dose, rng, card.patch_px)
            start = network_readings(bundle, windows)
            load = os.getloadavg()[0]
            res = fitter.fit(windows, start)
            row = {"noise": kind, "dose_per_px": dose, **score(space, truth, start, res)}
            if phys:
                # against the slip the jittered atoms show (see _mean_slip_shift)
                row.update({f"{k}_vs_shown": v for k, v in score(space, shown, start, res)
                            .items() if k.startswith(("within", "z_rms", "fit_dD", "network_dD"))})
            row.update({
                   "fit_seconds": round(res.seconds, 2),
                   "windows_per_second": round(res.windows_per_second, 2),
                   "load_average": round(load, 2)})
            rows.append(row)
            print(f"{kind:8s} dose {dose:6g}: 1σ {row['within_1sigma']:.3f} 2σ "
                  f"{row['within_2sigma']:.3f} (Laplace {row['within_1sigma_laplace']:.3f} / "
                  f"{row['within_2sigma_laplace']:.3f}); ΔD network "
                  f"{row['network_dD_median_A']:.4f}"
                  f" fit {row['fit_dD_median_A']:.4f} Å (p95 {row['network_dD_p95_A']:.3f} / "
                  f"{row['fit_dD_p95_A']:.3f}); χ² {row['chi2_red_median']:.2f}; "
                  f"{row['windows_per_second']:.1f} windows/s"
                  + (f"; against the shown slip 1σ {row['within_1sigma_vs_shown']:.3f} 2σ "
                     f"{row['within_2sigma_vs_shown']:.3f}" if phys else ""), flush=True)
            part = speed.setdefault(kind, {"windows": 0, "seconds": 0.0, "iterations": 0.0,
                                           "jittered": 0, "load_average": [],
                                           "simulation_seconds": round(sim_s, 1)})
            part["windows"] += len(windows)
            part["seconds"] += res.seconds
            part["iterations"] += float(res.iterations.sum())
            part["jittered"] += int((res.params["row_jitter_A"] > 0).sum())
            part["load_average"].append(round(load, 2))
    for part in speed.values():
        part["windows_per_second"] = round(part["windows"] / part["seconds"], 2)
        part["iterations_mean"] = round(part.pop("iterations") / part["windows"], 2)
        part["seconds"] = round(part["seconds"], 1)
        part["threads"] = 1
    return rows, speed


def multislice(bundle, fitter, args) -> dict:
    from stackview.inference.spm import resample_to_model

    data = np.load(RESULTS / "multislice_ReS2_2nm.npz", allow_pickle=True)
    meta = json.loads(str(data["metadata"]))
    truth = np.array(meta["structure_info"]["stackview"]["slips_A"][0])
    card = bundle.card
    img = resample_to_model(data["image"], meta["sampling_A"] / 10.0, card.sampling_A)
    P = card.patch_px
    # the 2.0 nm field is 3 px short of the model's 2.05 nm window: the network sees it padded
    # by reflection; the fit sees the image alone (its renderer takes any window size)
    pad = max(0, P - min(img.shape))
    from stackview.fit import WindowFitter

    small = WindowFitter(card.material, "slip", card.layers, fitter.renderer.optics,
                         card.sampling_A, img.shape[:2], fitter.settings)
    rng = np.random.default_rng(args.seed + 1)
    space = small.space
    out = {"image": "multislice_ReS2_2nm.npz", "truth_A": truth.tolist(),
           "window_px": list(img.shape), "doses": []}
    for dose in [None, *args.doses]:
        reps = 1 if dose is None else args.multislice_draws
        if dose is None:
            wins = img[None].astype(np.float32)
        else:
            clean01 = (img - img.min()) / (img.max() - img.min())
            wins = np.stack([rng.poisson(dose * clean01).astype(np.float32)
                             for _ in range(reps)])
        padded = np.stack([np.pad(w, ((0, pad), (0, pad)), mode="reflect")[:P, :P]
                           for w in wins])
        start = network_readings(bundle, padded)
        res = small.fit(wins, start)
        d_net = np.asarray(space.distance(start, truth))
        d_fit = np.asarray(space.distance(res.labels, truth))
        _, best = space.residual(res.labels, truth)
        z = (res.labels - best) / res.sigma
        row = {"dose_per_px": dose if dose is not None else "noise-free", "draws": reps,
               "network_dD_median_A": round(float(np.median(d_net)), 4),
               "fit_dD_median_A": round(float(np.median(d_fit)), 4),
               "fit_dD_p95_A": round(float(np.percentile(d_fit, 95)), 4),
               "network_dD_p95_A": round(float(np.percentile(d_net, 95)), 4),
               "fit_closer_fraction": round(float(np.mean(d_fit < d_net)), 3),
               "fit_median_A": np.round(np.median(res.labels, axis=0), 4).tolist(),
               "sigma_median_A": round(float(np.median(res.sigma)), 4),
               "within_1sigma": round(float(np.mean(np.abs(z) < 1)), 3),
               "within_2sigma": round(float(np.mean(np.abs(z) < 2)), 3),
               "chi2_red_median": round(float(np.median(res.chi2_red)), 3),
               "light_weight_median": round(float(np.median(res.params["light_weight"])), 3),
               "source_fwhm_A_median": round(float(np.median(res.params["source_fwhm_A"])), 3)}
        out["doses"].append(row)
        print(f"multislice dose {row['dose_per_px']}: ΔD network {row['network_dD_median_A']:.4f}"
              f" fit {row['fit_dD_median_A']:.4f} Å; within 1σ {row['within_1sigma']:.2f}, 2σ "
              f"{row['within_2sigma']:.2f}; χ² {row['chi2_red_median']:.2f}", flush=True)
    return out


def twisted_windows(n: int, px: int, sampling_A: float, optics, rng, lo_deg=5.0, hi_deg=55.0):
    """Clean twisted MoS2 windows: θ uniform in [lo, hi], the whole stack turned at random (the
    twist model reads any orientation), layers and moiré at random places."""
    from stackview.materials import build_twisted
    from stackview.simulation import simulate

    truth = rng.uniform(lo_deg, hi_deg, n)
    fov = (px * sampling_A, px * sampling_A)
    out = np.empty((n, px, px), np.float32)
    for k, th in enumerate(truth):
        atoms = build_twisted("MoS2", float(th), fov_A=fov, margin_A=12,
                              top_shift_A=tuple(rng.uniform(0, 3, 2)),
                              origin_A=tuple(rng.uniform(0, 3, 2)))
        t = np.radians(rng.uniform(0, 360))
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        c = np.array(fov) / 2
        pos = atoms.positions.copy()
        pos[:, :2] = (pos[:, :2] - c) @ rot.T + c
        atoms.positions = pos
        out[k] = simulate(atoms, optics, sampling_A=sampling_A, fov_A=fov).image
    return out, truth


def twist(args) -> dict:
    """The bundled twist model's windows (256² px at 0.25 Å/px), shot noise, network then fit."""
    from stackview.analysis.analyze import optics_for_card
    from stackview.fit import WindowFitter
    from stackview.models.bundle import load_bundle
    from stackview.style.physics_noise import PhysicsNoise

    bundle = load_bundle("MoS2_twist_bilayer")
    card = bundle.card
    optics = optics_for_card(card)
    fitter = WindowFitter(card.material, "twist", 2, optics, card.sampling_A, card.patch_px)
    space = fitter.space
    rng = np.random.default_rng(args.seed + 2)
    clean, truth = twisted_windows(args.n_twist, card.patch_px, card.sampling_A, optics, rng)
    out = {"model": card.name, "window_px": card.patch_px, "theta_range_deg": [5.0, 55.0],
           "rows": []}
    for dose in args.twist_doses:
        noise = PhysicsNoise(dose_per_px=dose, background=0.0, read_noise=0.0,
                             source_blur_px=0.0, gamma=1.0, scan_jitter_px=0.0)
        wins = np.stack([noise.apply(im, rng=rng) for im in clean]).astype(np.float32)
        start = network_readings(bundle, wins)
        res = fitter.fit(wins, start)
        d_net = np.asarray(space.distance(start[:, 0], truth))
        d_fit = np.asarray(space.distance(res.labels[:, 0], truth))
        z = d_fit / res.sigma[:, 0]
        row = {"dose_per_px": dose, "n": int(len(truth)),
               "within_1sigma": round(float(np.mean(z < 1)), 3),
               "within_2sigma": round(float(np.mean(z < 2)), 3),
               "network_dtheta_median_deg": round(float(np.median(d_net)), 4),
               "network_dtheta_p95_deg": round(float(np.percentile(d_net, 95)), 4),
               "fit_dtheta_median_deg": round(float(np.median(d_fit)), 4),
               "fit_dtheta_p95_deg": round(float(np.percentile(d_fit, 95)), 4),
               "fit_closer_fraction": round(float(np.mean(d_fit < d_net)), 3),
               "sigma_median_deg": round(float(np.median(res.sigma)), 4),
               "chi2_red_median": round(float(np.median(res.chi2_red)), 3),
               "windows_per_second": round(res.windows_per_second, 2),
               "iterations_mean": round(float(res.iterations.mean()), 2)}
        out["rows"].append(row)
        print(f"twist dose {dose:g}: 1σ {row['within_1sigma']:.3f} 2σ {row['within_2sigma']:.3f};"
              f" Δθ network {row['network_dtheta_median_deg']:.4f} fit "
              f"{row['fit_dtheta_median_deg']:.4f}° (p95 {row['network_dtheta_p95_deg']:.3f} / "
              f"{row['fit_dtheta_p95_deg']:.3f}); χ² {row['chi2_red_median']:.2f}; "
              f"{row['windows_per_second']:.1f} windows/s", flush=True)
    return out


def sample(args) -> dict:
    from stackview.analysis.analyze import analyze_image
    from stackview.core.labels import SlipLabels
    from stackview.paths import SAMPLE_IMAGE

    t0 = time.perf_counter()
    result = analyze_image(SAMPLE_IMAGE, material="ReS2", fit=True)
    seconds = time.perf_counter() - t0
    fit = result.fit
    space = SlipLabels("ReS2")
    net = np.median(result.smap.points[:, 2:4], axis=0)
    fitted = np.median(fit.labels, axis=0)
    out = {"image": SAMPLE_IMAGE.name, "command": "analyze_image(SAMPLE_IMAGE, material='ReS2',"
           " fit=True)", "seconds": round(seconds, 2), "windows": len(fit),
           "network_median_A": np.round(net, 4).tolist(),
           "fit_median_A": np.round(fitted, 4).tolist(),
           "fit_vs_network_A": round(float(space.distance(fitted, net)), 4),
           "fit_summary": fit.summary()}
    check = RESULTS / "experimental_check.json"
    if check.exists():
        for im in json.loads(check.read_text())["images"]:
            if im["file"] == SAMPLE_IMAGE.name and "bilayer" in im:
                scan = np.array(im["bilayer"]["scan"]["best_slip_A"])
                out["model_free_scan_A"] = np.round(scan, 4).tolist()
                out["fit_vs_scan_A"] = round(float(space.distance(fitted, scan)), 4)
                out["network_vs_scan_A"] = round(float(space.distance(net, scan)), 4)
    print(f"sample: network {out['network_median_A']}, fit {out['fit_median_A']}, scan "
          f"{out.get('model_free_scan_A')}: fit-scan {out.get('fit_vs_scan_A')} Å, "
          f"network-scan {out.get('network_vs_scan_A')} Å", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150, help="windows per noise kind and dose")
    ap.add_argument("--seed", type=int, default=18, help="held-out seed (tuning used 1-3)")
    ap.add_argument("--doses", type=float, nargs="+", default=[20.0, 50.0, 200.0, 1000.0])
    ap.add_argument("--multislice-draws", type=int, default=40)
    ap.add_argument("--n-twist", type=int, default=60, help="twisted windows per dose")
    ap.add_argument("--twist-doses", type=float, nargs="+", default=[50.0, 500.0])
    ap.add_argument("--parts", nargs="+",
                    default=["coverage", "multislice", "twist", "sample"])
    ap.add_argument("--out", default=str(RESULTS / "bench_fit.json"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from realistic_corpus import code_version, json_default

    from stackview.analysis.analyze import optics_for_card
    from stackview.fit import WindowFitter
    from stackview.models.bundle import load_bundle

    bundle = load_bundle("ReS2_slip_bilayer")
    card = bundle.card
    optics = optics_for_card(card)
    fitter = WindowFitter(card.material, card.task, card.layers, optics, card.sampling_A,
                          card.patch_px)
    t0 = time.perf_counter()
    out: dict = {"command": "python benchmarks/bench_fit.py " + " ".join(argv or sys.argv[1:]),
                 "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                             "torch_threads": 1, "load_average_start": os.getloadavg()},
                 "stackview": code_version(), "model": card.name, "seed": args.seed,
                 "settings": fitter.settings.__dict__}
    if "coverage" in args.parts:
        out["coverage"], out["speed"] = coverage(bundle, fitter, optics, args)
    if "multislice" in args.parts:
        out["multislice"] = multislice(bundle, fitter, args)
    if "twist" in args.parts:
        out["twist"] = twist(args)
    if "sample" in args.parts:
        out["sample"] = sample(args)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=json_default) + "\n")
    print(f"-> {args.out} ({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Accuracy of a stacking model on labelled test patches, and the paper's robustness studies.

* :func:`slip_metrics` / :func:`twist_metrics` — metrics of predictions against true labels:
  symmetry-aware ΔD (Å) mean / median / 75th / 95th percentile / max, per-axis errors (along the
  label axes Da, Db, … and Cartesian x, y, all against the nearest equivalent true label); twist
  error (degrees) and the θ vs 60° − θ confusion rate (the fraction of distinguishable samples
  whose prediction lies nearer the mirror-partner angle than the true one).
* :func:`evaluate_bundle` — predict a dataset with a bundle and compute the metrics (a job);
  :func:`write_report` — JSON + PNG (error histogram, predicted vs true).
* Studies (each one command in the CLI; long): :func:`study_defects` (vacancy ratio 0–10 %),
  :func:`study_psnr` (PSNR 30 → 7), both on fresh test sets styled like the bundle's training
  data; :func:`study_train_step` (train on 0.1–0.4 Å grids, test on a 0.05 Å grid).

numpy here; torch only through the predict/train modules; matplotlib (Agg) only in the writers.
No Qt.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError
from stackview.core.labels import SlipLabels, TwistLabels
from stackview.io.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)


# --- metrics -----------------------------------------------------------------------------------
def _stats(values: np.ndarray, unit: str) -> dict:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"n": 0}
    return {
        "n": int(v.size), f"mean_{unit}": float(v.mean()), f"median_{unit}": float(np.median(v)),
        f"p75_{unit}": float(np.percentile(v, 75)), f"p95_{unit}": float(np.percentile(v, 95)),
        f"max_{unit}": float(v.max()), f"rmse_{unit}": float(np.sqrt(np.mean(v**2))),
    }


def slip_metrics(predicted_A, true_A, space: SlipLabels) -> dict:
    """Symmetry-aware slip metrics (Å); see module docstring. With a family column
    (``family="both"``): the family accuracy and confusion, and the slip metrics over the
    windows whose family is right (per family too)."""
    pred = np.asarray(predicted_A, dtype=float).reshape(-1, space.n_outputs)
    true = np.asarray(true_A, dtype=float).reshape(-1, space.n_outputs)
    if space.family == "both":
        return _family_metrics(pred, true, space)
    err_cart, best_true = space.residual(pred, true)
    dd = np.sqrt((err_cart**2).sum(axis=(-1, -2)))
    out = _stats(dd, "A")
    label_err = pred - best_true
    out["per_axis"] = {
        name: {"mean_abs_A": float(np.abs(label_err[:, k]).mean()),
               "rmse_A": float(np.sqrt((label_err[:, k] ** 2).mean())),
               "bias_A": float(label_err[:, k].mean())}
        for k, name in enumerate(space.names)
    }
    cart = err_cart.reshape(len(pred), -1)
    axes = ["x", "y"] if space.layers == 2 else ["x12", "y12", "x23", "y23"]
    out["per_axis_cartesian"] = {
        name: {"mean_abs_A": float(np.abs(cart[:, k]).mean()),
               "rmse_A": float(np.sqrt((cart[:, k] ** 2).mean()))}
        for k, name in enumerate(axes)
    }
    out["fraction_below_0.1_A"] = float(np.mean(dd < 0.1))
    out["fraction_below_0.2_A"] = float(np.mean(dd < 0.2))
    return out


def _family_metrics(pred: np.ndarray, true: np.ndarray, space: SlipLabels) -> dict:
    fp, ft = space.family_of(pred), space.family_of(true)
    right = fp == ft
    dd = space.distance(pred, true)[right]
    out = _stats(dd, "A")
    out["family_accuracy"] = float(right.mean()) if len(right) else float("nan")
    out["family_confusion"] = {f"true_{a}_pred_{b}": int(np.sum((ft == i) & (fp == j)))
                               for i, a in enumerate(("parallel", "antiparallel"))
                               for j, b in enumerate(("parallel", "antiparallel"))}
    out["per_family"] = {}
    for code, name in enumerate(("parallel", "antiparallel")):
        rows = right & (ft == code)
        sub_space = space.family_space(name)
        d = sub_space.distance(pred[rows, :2], true[rows, :2]) if rows.any() else np.zeros(0)
        out["per_family"][name] = _stats(d, "A") | {
            "family_accuracy": float(np.mean(fp[ft == code] == code)) if (ft == code).any()
            else float("nan")}
    out["fraction_below_0.1_A"] = float(np.mean(dd < 0.1)) if dd.size else float("nan")
    out["fraction_below_0.2_A"] = float(np.mean(dd < 0.2)) if dd.size else float("nan")
    return out


def twist_metrics(predicted_deg, true_deg, space: TwistLabels,
                  distinguishable_deg: float = 1.0) -> dict:
    """Twist metrics (degrees) and the θ / (60° − θ) confusion rate.

    Parameters
    ----------
    distinguishable_deg
        Samples whose θ and partner angle (e.g. 60° − θ) are closer than this are left out of
        the confusion rate (near 30° the two are the same stack).
    """
    pred = np.asarray(predicted_deg, dtype=float).reshape(-1)
    true = np.asarray(true_deg, dtype=float).reshape(-1)
    err = space.distance(pred, true)
    out = _stats(err, "deg")
    lo, hi = space.domain_deg
    partner = lo + hi - space.canonical(true)  # 60° − θ for MoS2
    separation = space.distance(partner, true)
    usable = separation > distinguishable_deg
    confused = usable & (space.distance(pred, partner) < err)
    out["confusion_rate"] = float(confused.sum() / max(1, usable.sum()))
    out["confusions"] = int(confused.sum())
    out["confusion_candidates"] = int(usable.sum())
    out["fraction_below_0.3_deg"] = float(np.mean(err < 0.3))
    # by true angle: near alignment a window sees no moiré (the analysis gives a bound there),
    # so the accuracy bar is stated away from both ends
    t = space.canonical(true)
    edges = [lo, lo + 3, lo + 5, 15, 25, 35, 45, hi - 5, hi - 3, hi] if hi - lo == 60 else \
        list(np.linspace(lo, hi, 7))
    out["by_angle"] = [
        {"from_deg": float(a), "to_deg": float(b), "n": int(m.sum()),
         "mean_deg": float(err[m].mean()) if m.any() else None,
         "median_deg": float(np.median(err[m])) if m.any() else None,
         "confusions": int((confused & m).sum())}
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        for m in [(t >= a) & ((t < b) | ((b == hi) & (t <= b)))]]
    inner = (t >= lo + 3) & (t <= hi - 3)
    if inner.any():
        out["mean_deg_3deg_from_ends"] = float(err[inner].mean())
    middle = (t >= lo + 5) & (t <= hi - 5)
    out["confusions_5deg_from_ends"] = int((confused & middle).sum())
    return out


def metrics_for(space, predicted, true) -> dict:
    if isinstance(space, TwistLabels):
        return twist_metrics(predicted, true, space)
    return slip_metrics(predicted, true, space)


# --- a bundle on a dataset ----------------------------------------------------------------------
def evaluate_bundle(
    bundle, dataset, tta: bool = False, batch_size: int = 64, max_samples: int | None = None,
    progress=null_progress, cancel: CancelToken | None = None, device: str | None = "cpu",
) -> dict:
    """Predict a labelled dataset with a bundle; returns metrics, predictions and labels.

    Parameters
    ----------
    bundle
        :class:`stackview.models.Bundle` or its name/path.
    dataset
        :class:`stackview.datasets.PatchDataset` or its path. Its sampling and patch size must
        match the bundle's card.
    tta
        Average label-preserving test-time views (slower; see :mod:`.predict`).
    max_samples
        Evaluate only the first N patches.
    device
        ``cpu``, ``cuda`` or ``auto`` (CUDA when available); the model is moved there for the
        evaluation and back afterwards.
    """
    from stackview.datasets.store import PatchDataset
    from stackview.engine.devices import module_device, resolve_device
    from stackview.inference.predict import _as_bundle, predict_many

    cancel = cancel or CancelToken()
    bundle = _as_bundle(bundle)
    ds = dataset if isinstance(dataset, PatchDataset) else PatchDataset(dataset)
    card = bundle.card
    if ds.task != card.task or ds.material != card.material:
        raise UsageError(f"the dataset is {ds.material} {ds.task}, the model "
                         f"{card.material} {card.task}")
    if ds.labels.shape[1] != card.regressor_spec().n_outputs:
        raise UsageError("the dataset's labels do not match the model's outputs (layers?)")
    n = len(ds) if max_samples is None else min(len(ds), int(max_samples))
    preds = np.empty((n, ds.labels.shape[1]))
    unc = np.empty(n)
    step = max(1, batch_size // (1 if not tta else 8))
    home = module_device(bundle.model)
    bundle.model.to(resolve_device(device))
    try:
        for start in range(0, n, step):
            cancel.check()
            idx = np.arange(start, min(n, start + step))
            images, _ = ds.get(idx)
            results = predict_many(list(images), bundle, sampling_A=ds.sampling_A, tta=tta,
                                   batch_size=batch_size)
            preds[idx] = np.stack([r.values for r in results])
            unc[idx] = [r.uncertainty for r in results]
            progress(int(idx[-1]) + 1, n, "predicting")
    finally:
        bundle.model.to(home)
    space = bundle.label_space
    metrics = metrics_for(space, preds, ds.labels[:n])
    metrics["dataset"] = ds.summary()
    metrics["model"] = card.name
    metrics["tta"] = bool(tta)
    if tta:
        metrics["mean_uncertainty"] = float(unc.mean())
    return {"metrics": metrics, "predicted": preds, "true": ds.labels[:n], "uncertainty": unc,
            "conditions": {k: v[:n] for k, v in ds.conditions.items()}}


def write_report(result: dict, out_dir: str | os.PathLike, space, title: str = "") -> Path:
    """``metrics.json``, ``predictions.csv`` and ``errors.png`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "metrics.json", json.dumps(result["metrics"], indent=1))
    pred, true = result["predicted"], result["true"]
    if isinstance(space, SlipLabels):
        err = space.distance(pred, true)
        err = np.where(np.isfinite(err), err, np.nan)  # the wrong family: no slip error
        names = [n if n == "family" else f"{n}_A" for n in space.names]
        _, best_true = space.residual(pred, true)
    else:
        err = space.distance(pred[:, 0], true[:, 0])
        names = ["theta_deg"]
        best_true = true
    header = ",".join([f"true_{n}" for n in names] + [f"pred_{n}" for n in names] + ["error"])
    rows = np.column_stack([true, pred, err])
    with atomic_path(out_dir / "predictions.csv") as tmp:
        np.savetxt(tmp, rows, delimiter=",", header=header, comments="", fmt="%.6g")
    _plot_errors(out_dir / "errors.png", space, pred, best_true, true, err, title)
    return out_dir / "metrics.json"


def _plot_errors(path: Path, space, pred, best_true, true, err, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    twist = isinstance(space, TwistLabels)
    unit = "°" if twist else "Å"
    n_axes = 1 if twist else space.n_outputs
    fig, axes = plt.subplots(1, 1 + n_axes, figsize=(4 * (1 + n_axes), 3.6))
    axes = np.atleast_1d(axes)
    err = np.asarray(err, dtype=float)
    err = err[np.isfinite(err)] if np.isfinite(err).any() else np.zeros(1)
    axes[0].hist(err, bins=50, color="tab:blue")
    axes[0].axvline(np.mean(err), color="k", ls="--", label=f"mean {np.mean(err):.3g} {unit}")
    axes[0].axvline(np.percentile(err, 95), color="tab:red", ls=":",
                    label=f"95% {np.percentile(err, 95):.3g} {unit}")
    axes[0].set_xlabel(("twist error" if twist else "ΔD") + f" ({unit})")
    axes[0].set_ylabel("patches")
    axes[0].legend(fontsize=8)
    names = ["θ"] if twist else list(space.names)
    for k in range(n_axes):
        ax = axes[k + 1]
        x = (true[:, 0] if twist else best_true[:, k])
        ax.scatter(x, pred[:, k], s=3, alpha=0.5)
        lo, hi = float(np.min(x)), float(np.max(x))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_xlabel(f"true {names[k]} ({unit})")
        ax.set_ylabel(f"predicted {names[k]} ({unit})")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


# --- studies ------------------------------------------------------------------------------------
def _test_spec_from_card(card, n: int, seed: int, **changes):
    """A test-set spec styled like the bundle's training data, with a fresh seed."""
    from stackview.datasets.spec import DatasetSpec

    base = (card.training or {}).get("dataset_spec")
    if not base:
        raise UsageError(f"the card of {card.name} does not record its training data; give the "
                         "test-set settings explicitly")
    spec = DatasetSpec.from_dict(base)
    return spec.replace(mode="random", count=n, seed=seed, **changes)


def _run_study(bundle, specs: list[tuple[float, object]], out_dir: Path, key: str, unit: str,
               scheduler: str, workers: int | None, progress, cancel) -> dict:
    from stackview.datasets.generate import generate_dataset

    results = []
    total = len(specs)
    for k, (value, spec) in enumerate(specs):
        cancel.check()
        progress(k, total, f"{key} {value:g}")
        path = out_dir / "data" / f"{key}_{value:g}.zarr"
        if not path.exists():
            generate_dataset(spec, path, scheduler=scheduler, workers=workers, cancel=cancel,
                             resume=True)
        res = evaluate_bundle(bundle, path, cancel=cancel)
        m = res["metrics"]
        space = bundle.label_space
        err = (space.distance(res["predicted"], res["true"]) if isinstance(space, SlipLabels)
               else space.distance(res["predicted"][:, 0], res["true"][:, 0]))
        err = err[np.isfinite(err)]  # a window read in the other family has no slip error
        results.append({key: value, **{k2: v for k2, v in m.items() if k2 != "dataset"},
                        "errors": err.tolist()})
    progress(total, total, "done")
    _plot_study(out_dir / f"study_{key}.png", key, unit, results, bundle.label_space)
    summary = {"study": key, "model": bundle.card.name,
               "results": [{k: v for k, v in r.items() if k != "errors"} for r in results]}
    write_text_atomic(out_dir / f"study_{key}.json", json.dumps(summary, indent=1))
    return summary


def _plot_study(path: Path, key: str, unit: str, results: list[dict], space) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    err_unit = "°" if isinstance(space, TwistLabels) else "Å"
    fig, ax = plt.subplots(figsize=(6, 3.8))
    data = [r["errors"] for r in results]
    labels = [f"{r[key]:g}" for r in results]
    ax.boxplot(data, tick_labels=labels, whis=(2.5, 97.5), showfliers=False)
    ax.plot(range(1, len(data) + 1), [np.mean(d) for d in data], "o--", color="tab:red",
            label="mean")
    ax.set_xlabel(f"{key.replace('_', ' ')} ({unit})" if unit else key.replace("_", " "))
    ax.set_ylabel(("twist error" if err_unit == "°" else "ΔD") + f" ({err_unit})")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def study_defects(bundle, out_dir, ratios=(0.0, 0.02, 0.04, 0.06, 0.08, 0.10), n: int = 500,
                  seed: int = 9001, scheduler: str = "threads", workers: int | None = None,
                  progress=null_progress, cancel: CancelToken | None = None) -> dict:
    """ΔD against the vacancy ratio (the paper's Fig. 4b): one fresh test set per ratio."""
    from stackview.inference.predict import _as_bundle

    bundle = _as_bundle(bundle)
    specs = [(r, _test_spec_from_card(bundle.card, n, seed, vacancy_range=(r, r)))
             for r in ratios]
    return _run_study(bundle, specs, Path(out_dir), "vacancy_ratio", "", scheduler, workers,
                      progress, cancel or CancelToken())


def study_psnr(bundle, out_dir, psnrs=(30.0, 25.0, 20.0, 15.0, 10.0, 7.0), n: int = 500,
               seed: int = 9002, scheduler: str = "threads", workers: int | None = None,
               progress=null_progress, cancel: CancelToken | None = None) -> dict:
    """ΔD against the image PSNR (the paper's Fig. 4c): Gaussian noise at each PSNR."""
    from stackview.inference.predict import _as_bundle

    bundle = _as_bundle(bundle)
    specs = [(p, _test_spec_from_card(bundle.card, n, seed, psnr_range_dB=(p, p),
                                      noise_probability=1.0)) for p in psnrs]
    return _run_study(bundle, specs, Path(out_dir), "psnr", "dB", scheduler, workers,
                      progress, cancel or CancelToken())


def study_train_step(
    out_dir, base_spec, regressor_spec, train_config, steps_A=(0.1, 0.2, 0.3, 0.4),
    test_step_A: float = 0.05, test_seed: int = 9003, scheduler: str = "threads",
    workers: int | None = None, progress=null_progress, cancel: CancelToken | None = None,
) -> dict:
    """The paper's Fig. 3b: train one model per training-grid step, test on a finer grid.

    Parameters
    ----------
    base_spec
        :class:`DatasetSpec` of the training data (its ``step_A`` is replaced per run).
    regressor_spec, train_config
        Architecture and optimisation, the same for every run.
    """
    import dataclasses

    from stackview.datasets.generate import generate_dataset
    from stackview.datasets.store import open_dataset
    from stackview.inference.train import train
    from stackview.models.bundle import save_bundle
    from stackview.models.card import ModelCard

    cancel = cancel or CancelToken()
    out_dir = Path(out_dir)
    test_spec = base_spec.replace(mode="grid", step_A=test_step_A, count=1, seed=test_seed)
    test_path = out_dir / "data" / f"test_grid_{test_step_A:g}.zarr"
    if not test_path.exists():
        generate_dataset(test_spec, test_path, scheduler=scheduler, workers=workers,
                         cancel=cancel, resume=True)
    results = []
    for k, step in enumerate(steps_A):
        cancel.check()
        progress(k, len(steps_A), f"step {step:g} Å")
        spec = base_spec.replace(mode="grid", step_A=step)
        path = out_dir / "data" / f"train_grid_{step:g}.zarr"
        if not path.exists():
            generate_dataset(spec, path, scheduler=scheduler, workers=workers, cancel=cancel,
                             resume=True)
        ds = open_dataset(path)
        stem = out_dir / "models" / f"step_{step:g}"
        result = train(regressor_spec, ds, train_config, out_dir=out_dir / "checkpoints" /
                       f"step_{step:g}", resume=(out_dir / "checkpoints" / f"step_{step:g}" /
                                                 "checkpoint.json").exists(), cancel=cancel)
        card = ModelCard(name=stem.name, spec=regressor_spec.to_dict(),
                         sampling_A=ds.sampling_A, patch_px=ds.patch_px,
                         orientation=spec.orientation, style=spec.style,
                         training={"config": dataclasses.asdict(train_config),
                                   "data": ds.summary(), "dataset_spec": spec.to_dict(),
                                   "seconds": result.seconds})
        save_bundle(stem, result.model, card)
        res = evaluate_bundle(stem, test_path, cancel=cancel)
        space = regressor_spec.label_space()
        err = space.distance(res["predicted"], res["true"])
        results.append({"train_step_A": step, "n_train": len(ds),
                        **{k2: v for k2, v in res["metrics"].items() if k2 != "dataset"},
                        "errors": err.tolist()})
    progress(len(steps_A), len(steps_A), "done")
    _plot_study(out_dir / "study_train_step_A.png", "train_step_A", "Å", results,
                regressor_spec.label_space())
    summary = {"study": "train_step_A", "test_step_A": test_step_A,
               "results": [{k: v for k, v in r.items() if k != "errors"} for r in results]}
    write_text_atomic(out_dir / "study_train_step_A.json", json.dumps(summary, indent=1))
    return summary

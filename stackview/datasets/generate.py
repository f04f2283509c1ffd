"""Generate labelled patch datasets: labels, per-patch conditions, simulation, style, storage.

:func:`generate_dataset` is a job (``progress``, ``cancel``). It

1. draws every label and every per-patch condition up front from the spec's seed
   (:func:`sample_labels`, :func:`sample_conditions`): lattice origin (random per patch),
   orientation, defocus, source size, vacancy ratio, hole, mask, contamination, PSNR and, for
   twist, the registry shift that places the patch somewhere across one moiré period;
2. renders the patches chunk by chunk (:func:`render_chunk`) with the fast incoherent simulator
   (:func:`stackview.simulation.render_incoherent_batch`), applies the style and the image
   augmentations — each patch from its own generator seeded by ``(seed, index)``, so the result
   does not depend on the chunking, the scheduler or the number of workers;
3. runs the chunks with dask: locally (threads or processes) or on a dask.distributed cluster
   (``scheduler="tcp://host:8786"``); chunks come back to this process, which writes them into
   the zarr store (:mod:`stackview.datasets.store`), so workers need no shared file system.

Geometry of a patch (Å): the field of view is ``[0, P] × [0, P]`` with ``P = patch_px · sampling``;
atoms are built over the field of view enlarged by the probe-tail radius (and by the corners of a
rotated square when the orientation is random), then rotated about the patch centre. Image row i
is along +y, column j along +x (the simulator's convention).

No torch and no Qt here (the DRIT style imports torch inside :func:`apply_style`).
"""

from __future__ import annotations

import datetime as _dt
import functools
import itertools
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from stackview import __version__
from stackview.datasets.augment import (
    add_contamination,
    add_noise_psnr,
    apply_mask,
    normalise01,
)
from stackview.datasets.spec import MAX_SAMPLES, DatasetSpec
from stackview.datasets.store import DATASET_FORMAT, create_store, partial_path
from stackview.engine.jobs import CancelToken, null_progress
from stackview.errors import UsageError

log = logging.getLogger(__name__)


# --- labels --------------------------------------------------------------------------------------
def _grid_axis(lo: float, hi: float, step: float, closed: bool) -> np.ndarray:
    n = int(math.floor((hi - lo) / step + 1e-9))
    axis = lo + step * np.arange(n + 1)
    if not closed and axis.size and hi - axis[-1] < 1e-9:
        axis = axis[:-1]
    return axis


def slip_grid(spec: DatasetSpec) -> np.ndarray:
    """Grid of slip labels (M, n) over the canonical domain with step ``spec.step_A``."""
    space = spec.label_space()
    bounds = space.domain_bounds_A()[: 2 * (spec.layers - 1)]
    # Da and Dc are periodic (half-open), Db on [0, b/2] is closed, Dd periodic; folded by a
    # point group the grid covers the whole (periodic) cell
    closed = ([False, False] if space.uses_group else [False, True, False, False])[: len(bounds)]
    axes = [_grid_axis(lo, hi, spec.step_A, c) for (lo, hi), c in zip(bounds, closed, strict=True)]
    size = int(np.prod([len(a) for a in axes]))
    if size * spec.count > MAX_SAMPLES:
        raise UsageError(
            f"a {spec.step_A:g} Å grid has {size} points ({size * spec.count} patches), more "
            f"than the {MAX_SAMPLES} allowed; use a larger step or random labels"
        )
    grid = np.array(list(itertools.product(*axes)), dtype=np.float64)
    if spec.family == "both":
        grid = np.vstack([np.c_[grid, np.zeros(len(grid))], np.c_[grid, np.ones(len(grid))]])
    return grid


def sample_labels(spec: DatasetSpec) -> np.ndarray:
    """All labels (N, n) of a dataset, deterministic from the spec (Å or degrees)."""
    rng = np.random.default_rng([spec.seed, 1])
    if spec.task == "slip":
        if spec.mode == "grid":
            return np.repeat(slip_grid(spec), spec.count, axis=0)
        bounds = np.array(spec.label_space().domain_bounds_A())
        labels = rng.uniform(bounds[:, 0], bounds[:, 1], size=(spec.count, len(bounds)))
        if spec.family == "both":  # half of each family, in random order
            labels[:, -1] = rng.permutation(np.arange(spec.count) % 2)
        return labels
    lo, hi = spec.theta_range_deg
    dom_lo, dom_hi = spec.label_space().domain_deg
    if lo < dom_lo - 1e-9 or hi > dom_hi + 1e-9:
        raise UsageError(
            f"the twist range [{lo:g}, {hi:g}]° lies outside the canonical domain "
            f"[{dom_lo:g}, {dom_hi:g}]° of {spec.material}"
        )
    if spec.mode == "grid":
        thetas = _grid_axis(lo, hi, spec.theta_step_deg, True)
    else:
        n_theta = max(1, spec.count // spec.positions)
        thetas = rng.uniform(lo, hi, size=n_theta)
    if len(thetas) * spec.positions > MAX_SAMPLES:
        raise UsageError(f"{len(thetas) * spec.positions} patches is more than {MAX_SAMPLES}")
    return np.repeat(thetas, spec.positions)[:, None]


def sample_conditions(spec: DatasetSpec, n: int) -> dict[str, np.ndarray]:
    """Per-patch random conditions (N,), deterministic from the spec (see module docstring)."""
    rng = np.random.default_rng([spec.seed, 2])
    c: dict[str, np.ndarray] = {}
    c["origin_u"] = rng.random(n)
    c["origin_v"] = rng.random(n)
    c["orientation_deg"] = (rng.uniform(0, 360, n) if spec.orientation == "random"
                            else np.zeros(n))
    c["defocus_A"] = rng.choice(np.array(spec.defocus_A), n)
    c["source_size_A"] = rng.choice(np.array(spec.source_size_A), n)
    c["vacancy_ratio"] = rng.uniform(*spec.vacancy_range, n)
    has_hole = rng.random(n) < spec.hole_probability
    c["hole_fraction"] = np.where(has_hole, rng.uniform(0, spec.hole_max_fraction, n), 0.0)
    c["hole_layer"] = rng.integers(0, spec.layers, n).astype(np.int16)
    c["hole_cx"] = rng.uniform(0.25, 0.75, n)
    c["hole_cy"] = rng.uniform(0.25, 0.75, n)
    has_mask = rng.random(n) < spec.mask_probability
    c["mask_fraction"] = np.where(has_mask, rng.uniform(0, spec.mask_max_fraction, n), 0.0)
    has_cont = rng.random(n) < spec.contamination_probability
    c["contamination"] = np.where(has_cont, rng.uniform(0, spec.contamination_max, n), 0.0)
    if spec.psnr_range_dB is not None:
        noisy = rng.random(n) < spec.noise_probability
        c["psnr_dB"] = np.where(noisy, rng.uniform(*spec.psnr_range_dB, n), np.nan)
    else:
        c["psnr_dB"] = np.full(n, np.nan)
    if spec.task == "twist":
        c["registry_u"] = rng.random(n)
        c["registry_v"] = rng.random(n)
    c["half_turn"] = np.zeros(n, dtype=np.int16)
    if spec.task == "slip" and spec.layers == 2:
        from stackview.core.stacking import has_families

        if has_families(spec.material):
            # the image's lattice frame leaves open which way the layers point
            c["half_turn"] = rng.integers(0, 2, n).astype(np.int16)
    return c


# --- one patch --------------------------------------------------------------------------------
def _rotate_about(xy: np.ndarray, angle_deg: float, centre: np.ndarray) -> np.ndarray:
    if angle_deg == 0:
        return xy
    t = math.radians(angle_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return (xy - centre) @ rot.T + centre


def patch_atoms(spec: DatasetSpec, label: np.ndarray, cond: dict, index: int):
    """Projected positions (n, 2) Å, atomic numbers and layer index of one patch's atoms."""
    from stackview.materials import get_material, stack_arrays, twisted_arrays
    from stackview.simulation import probe_tail_radius_A, resolve_optics

    material = get_material(spec.material)
    size = spec.patch_px * spec.sampling_A
    optics = resolve_optics(spec.optics)
    margin = probe_tail_radius_A(optics) + 2.0
    extra = size * (math.sqrt(2) - 1) / 2 if cond["orientation_deg"] != 0 else 0.0
    fov = (size + 2 * extra, size + 2 * extra)
    rng = np.random.default_rng([spec.seed, 3, index])
    origin = cond["origin_u"] * material.a_vec_A + cond["origin_v"] * material.b_vec_A
    common = dict(fov_A=fov, margin_A=margin, jitter_z_A=spec.jitter_z_A,
                  jitter_xy_A=spec.jitter_xy_A, vacancy_ratio=float(cond["vacancy_ratio"]),
                  seed=int(rng.integers(2**63)))
    if spec.task == "slip":
        label = np.asarray(label, dtype=float)
        anti = spec.family == "antiparallel" or (spec.family == "both" and label[-1] >= 0.5)
        slips = label[: 2 * (spec.layers - 1)].reshape(-1, 2)
        arrays = stack_arrays(material, slips, origin_A=origin, antiparallel=anti, **common)
    else:
        # a registry shift of the top layer along its own (rotated) lattice: uniform over one
        # cell means uniform over one moiré period; a whole cell is an exact period
        shift = _rotate_about(
            (cond["registry_u"] * material.a_vec_A + cond["registry_v"] * material.b_vec_A)[None],
            float(label[0]), np.zeros(2))[0]
        centre = np.array([fov[0] / 2, fov[1] / 2])
        arrays = twisted_arrays(material, float(label[0]), center_A=centre - origin,
                                top_shift_A=shift, origin_A=origin, **common)
    xy = arrays.positions[:, :2] - extra
    centre = np.array([size / 2, size / 2])
    xy = _rotate_about(xy, float(cond["orientation_deg"]), centre)
    if cond.get("half_turn", 0):
        xy = 2 * centre - xy
    numbers, layer = arrays.numbers, arrays.layer
    if cond["hole_fraction"] > 0:
        radius = math.sqrt(cond["hole_fraction"] * size * size / math.pi)
        hc = np.array([cond["hole_cx"], cond["hole_cy"]]) * size
        inside = (np.sum((xy - hc) ** 2, axis=1) < radius**2) & (layer == cond["hole_layer"])
        xy, numbers, layer = xy[~inside], numbers[~inside], layer[~inside]
    return xy, numbers, layer


def _conditions_row(conditions: dict[str, np.ndarray], i: int) -> dict:
    return {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in conditions.items()}


def apply_style(spec: DatasetSpec, images01: np.ndarray, rngs: list[np.random.Generator]):
    """Style a batch of clean patches in [0, 1] (``clean``: unchanged)."""
    if spec.style == "clean":
        return images01
    if spec.style == "physics":
        try:
            from stackview.style.physics_noise import PhysicsNoise
        except ImportError:
            raise UsageError(
                "the 'physics' style needs stackview.style.physics_noise, which this "
                "installation does not have; use --style clean with --psnr for noise"
            ) from None
        return _physics_style(PhysicsNoise, spec, images01, rngs)
    try:
        from stackview.style.translate import StyleTranslator  # noqa: F401
    except ImportError:
        raise UsageError(
            "the 'drit' style needs stackview.style.translate, which this installation does not "
            "have; use --style clean or physics"
        ) from None
    return _drit_style(spec, images01, rngs)


#: per-patch ranges of the physics noise model (uniform; pixels are the dataset's pixels);
#: ``DatasetSpec.physics`` overrides any of them with a number (fixed) or a [low, high] range
PHYSICS_RANGES = {
    "dose_per_px": (10.0, 200.0),
    "background": (0.0, 0.3),
    "read_noise": (0.0, 0.05),
    "source_blur_px": (0.0, 1.0),
    "gamma": (0.8, 1.2),
    "scan_jitter_px": (0.0, 0.5),
    "drift_px": (0.0, 2.0),  # magnitude per axis over the frame, random sign
}


def physics_parameters(spec: DatasetSpec, rng: np.random.Generator) -> dict:
    """One draw of the physics-noise parameters for a patch."""
    ranges = dict(PHYSICS_RANGES)
    for key, value in spec.physics.items():
        if key not in ranges:
            raise UsageError(f"unknown physics-noise parameter {key!r}; use "
                             + ", ".join(ranges))
        ranges[key] = (value, value) if np.ndim(value) == 0 else tuple(value)
    params = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()
              if k != "drift_px"}
    lo, hi = ranges["drift_px"]
    params["drift_px"] = tuple(float(v) for v in rng.uniform(lo, hi, 2) * rng.choice([-1, 1], 2))
    return params


def _physics_style(noise_cls, spec: DatasetSpec, images01: np.ndarray, rngs):
    out = np.empty_like(images01)
    for k, (im, rng) in enumerate(zip(images01, rngs, strict=True)):
        out[k] = normalise01(noise_cls(**physics_parameters(spec, rng)).apply(im, rng=rng))
    return out


@functools.lru_cache(maxsize=2)
def _translator(path: str):
    from stackview.style.translate import StyleTranslator

    return StyleTranslator.from_bundle(path)


def _drit_style(spec: DatasetSpec, images01: np.ndarray, rngs):
    translator = _translator(spec.style_bundle)
    out = np.empty_like(images01)
    for k, (im, rng) in enumerate(zip(images01, rngs, strict=True)):
        code = (rng.standard_normal(translator.attr_dim).astype(np.float32)
                if spec.style_diverse else None)
        out[k] = normalise01(translator.translate(im, code=code,
                                                  input_sampling_A=spec.sampling_A))
    return out


def render_chunk(spec_dict: dict, start: int, labels: np.ndarray,
                 conditions: dict[str, np.ndarray]) -> np.ndarray:
    """Images (n, H, W) float16 of samples ``start … start + n − 1`` (picklable for dask)."""
    from stackview.simulation import render_incoherent_batch, resolve_optics

    spec = DatasetSpec.from_dict(spec_dict)
    n = len(labels)
    px = spec.patch_px
    rows = [_conditions_row(conditions, i) for i in range(n)]
    atoms = [patch_atoms(spec, labels[i], rows[i], start + i) for i in range(n)]
    clean = np.empty((n, px, px), dtype=np.float32)
    groups: dict[tuple[float, float], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row["defocus_A"], row["source_size_A"]), []).append(i)
    base = resolve_optics(spec.optics)
    for (defocus, source), members in groups.items():
        optics = base.replace(defocus_A=defocus, source_size_A=source)
        items = [(atoms[i][0], atoms[i][1]) for i in members]
        clean[members] = render_incoherent_batch(items, optics, spec.sampling_A, (px, px),
                                                 (0.0, 0.0), workers=1)
    images = np.stack([normalise01(im) for im in clean])
    rngs = [np.random.default_rng([spec.seed, 4, start + i]) for i in range(n)]
    images = apply_style(spec, images, rngs)
    out = np.empty((n, px, px), dtype=np.float16)
    for i, (im, row, rng) in enumerate(zip(images, rows, rngs, strict=True)):
        x = im
        if row["contamination"] > 0:
            x = normalise01(add_contamination(x, row["contamination"], rng))
        if row["mask_fraction"] > 0:
            x = apply_mask(x, row["mask_fraction"], rng)
        if np.isfinite(row["psnr_dB"]):
            x = add_noise_psnr(x, row["psnr_dB"], rng)
        out[i] = x.astype(np.float16)
    return out


# --- the job ----------------------------------------------------------------------------------
def _provenance(spec: DatasetSpec, n: int, command: str | None) -> dict:
    from stackview.materials import get_material
    from stackview.simulation import resolve_optics
    from stackview.simulation.cross_sections import cross_section_model

    elements = get_material(spec.material).numbers().tolist()
    return {
        "format": DATASET_FORMAT, "stackview_version": __version__, "spec": spec.to_dict(),
        "n_samples": n, "label_names": list(spec.label_names()),
        "label_unit": "deg" if spec.task == "twist" else "A",
        "label_convention": (
            "theta (deg), canonical domain of stackview.core.labels.TwistLabels"
            if spec.task == "twist" else
            "D = Da*a_hat + Db*b_hat (A), canonical domain of "
            "stackview.core.labels.SlipLabels"),
        "simulator": "stackview.simulation incoherent (render_incoherent_batch)",
        # Z^1.7 where abTEM's scattering factors are missing: other contrast, other images
        "cross_sections": cross_section_model(elements, resolve_optics(spec.optics)),
        "optics": resolve_optics(spec.optics).to_dict(), "optics_preset": spec.optics,
        "patch_nm": spec.patch_nm, "image_normalisation": "min-max to [0, 1] before noise",
        "command": command or " ".join(["stackview", *sys.argv[1:]]),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "numpy": np.__version__,
    }


def _one_thread_per_worker() -> None:
    """Each worker process computes on one core: numerical libraries that start a thread per
    core in every one of N workers would run N² threads on N cores."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # scikit-learn's dependency; without it the variables above still act
        pass  # (torch, imported later by a DRIT style, reads OMP_NUM_THREADS when it starts)


class _Runner:
    """Runs chunk tasks and yields (chunk index, images) as they finish: local process workers
    and a dask.distributed cluster are fed one task per finished one; threads and sync run on
    dask's local schedulers in waves."""

    def __init__(self, scheduler: str, workers: int) -> None:
        self.scheduler = scheduler
        self.workers = max(1, int(workers))
        self.client = None
        self.pool = None
        if "://" in scheduler or (":" in scheduler and scheduler not in ("threads", "sync",
                                                                         "processes")):
            from distributed import Client

            try:
                self.client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise UsageError(
                    f"cannot reach the dask scheduler at {scheduler} ({exc})"
                ) from None
            self.workers = max(1, sum(self.client.nthreads().values()))
        elif scheduler not in ("threads", "processes", "sync"):
            raise UsageError(
                f"unknown scheduler {scheduler!r}: use threads, processes, sync or a "
                "dask.distributed address such as tcp://host:8786"
            )
        elif scheduler == "processes" and self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn" if sys.platform != "linux" else "forkserver")
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                            initializer=_one_thread_per_worker)

    def run(self, tasks: list[tuple], cancel: CancelToken):
        """Yield ``(key, result)`` for tasks ``(key, func, *args)`` as they complete."""
        if self.client is not None:
            yield from self._run_distributed(tasks, cancel)
            return
        if self.pool is not None:
            yield from self._run_pool(tasks, cancel)
            return
        import dask

        wave = self.workers * 2 if self.scheduler != "sync" else 1
        for k in range(0, len(tasks), wave):
            cancel.check()
            batch = tasks[k : k + wave]
            delayed = [dask.delayed(func)(*args) for _, func, *args in batch]
            kwargs = {"scheduler": self.scheduler}
            if self.scheduler == "threads":
                kwargs["num_workers"] = self.workers
            elif self.scheduler == "processes":
                kwargs["scheduler"] = "sync"  # one worker: no pool
            results = dask.compute(*delayed, **kwargs)
            for (key, *_), res in zip(batch, results, strict=True):
                yield key, res

    def _run_pool(self, tasks, cancel):
        """Local processes, streamed: a new task starts as soon as one finishes, and the main
        process writes finished chunks meanwhile. (dask's process scheduler ran each wave to its
        end before the next, and writing between waves left the workers idle: two workers were
        no faster than one here, and 16 on a 16-core machine about twice as fast.)"""
        from concurrent.futures import FIRST_COMPLETED, wait

        pending = list(reversed(tasks))
        futures = {}

        def submit() -> None:
            key, func, *args = pending.pop()
            futures[self.pool.submit(func, *args)] = key

        for _ in range(min(2 * self.workers, len(pending))):
            submit()
        try:
            while futures:
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in finished:
                    key = futures.pop(fut)
                    cancel.check()
                    yield key, fut.result()
                    if pending:
                        submit()
        finally:
            for fut in futures:
                fut.cancel()

    def _run_distributed(self, tasks, cancel):
        from distributed import as_completed

        in_flight = 2 * self.workers
        pending = list(tasks)
        futures = {}

        def submit():
            key, func, *args = pending.pop(0)
            fut = self.client.submit(func, *args, pure=False)
            futures[fut] = key
            return fut

        ac = as_completed([submit() for _ in range(min(in_flight, len(pending)))])
        try:
            for fut in ac:
                if cancel.cancelled:
                    self.client.cancel(list(futures))
                    cancel.check()
                key = futures.pop(fut)
                yield key, fut.result()
                if pending:
                    ac.add(submit())
        finally:
            if futures:
                self.client.cancel(list(futures))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.client is not None:
            self.client.close()


def generate_dataset(
    spec: DatasetSpec,
    path: str | os.PathLike,
    scheduler: str = "threads",
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    command: str | None = None,
    progress=null_progress,
    cancel: CancelToken | None = None,
) -> Path:
    """Generate a labelled dataset into ``path`` (a ``.zarr`` folder).

    Parameters
    ----------
    spec
        What to generate (seed included).
    path
        Target folder; written as ``.NAME.partial`` beside it and renamed when complete.
    scheduler
        ``"threads"`` (default), ``"processes"``, ``"sync"`` or a dask.distributed scheduler
        address (``tcp://host:8786``).
    workers
        Local parallelism (default: the number of CPUs).
    resume
        Continue an interrupted run of the same spec (already written chunks are kept).
    overwrite
        Replace an existing finished dataset.
    command
        Command line recorded in the provenance.
    progress, cancel
        Job API; a cancelled run leaves its partial folder for ``resume``.

    Returns
    -------
    Path of the finished dataset.
    """
    import zarr

    cancel = cancel or CancelToken()
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; choose another name or pass --overwrite")
    # validate the style before any work
    if spec.style == "physics":
        physics_parameters(spec, np.random.default_rng(0))
    if spec.style != "clean":
        apply_style(spec, np.zeros((0, spec.patch_px, spec.patch_px), np.float32), [])
    if spec.style == "drit":
        _translator(spec.style_bundle)  # a missing or broken bundle fails here, not in a worker
    labels = sample_labels(spec)
    n = len(labels)
    conditions = sample_conditions(spec, n)
    part = partial_path(path)
    group = None
    if resume and part.exists():
        group = zarr.open_group(str(part), mode="r+")
        if dict(group.attrs).get("spec") != spec.to_dict():
            raise UsageError(f"the unfinished dataset {part.name} was made with other settings; "
                             "run without --resume to start again")
        log.info("resuming %s", part)
    if group is None:
        group = create_store(part, n, spec.patch_px, spec.n_outputs, spec.chunk, labels,
                             conditions, _provenance(spec, n, command))
    done = np.asarray(group["done"][:])
    images = group["images"]
    n_chunks = len(done)
    spec_dict = spec.to_dict()
    tasks = []
    for k in range(n_chunks):
        if done[k]:
            continue
        lo, hi = k * spec.chunk, min(n, (k + 1) * spec.chunk)
        cond = {name: v[lo:hi] for name, v in conditions.items()}
        tasks.append((k, render_chunk, spec_dict, lo, labels[lo:hi], cond))
    finished = int(done.sum())
    progress(finished, n_chunks, "simulating")
    t0 = time.perf_counter()
    runner = _Runner(scheduler, workers or os.cpu_count() or 1)
    try:
        for k, block in runner.run(tasks, cancel):
            lo = k * spec.chunk
            images[lo : lo + len(block)] = block
            done[k] = True
            group["done"][k] = True
            finished += 1
            progress(finished, n_chunks, f"chunk {k}")
            cancel.check()
    finally:
        runner.close()
    seconds = time.perf_counter() - t0
    group.attrs.update({"generation_seconds": round(seconds, 3),
                        "completed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")})
    if path.exists():
        shutil.rmtree(path)
    os.replace(part, path)
    log.info("wrote %d patches to %s in %.1f s", n, path, seconds)
    return path

"""Datasets: label sampling, reproducibility from a seed, lazy reading, augmentations, CLI."""

import math

import numpy as np
import pytest

from stackview.cli import main
from stackview.core.labels import SlipLabels
from stackview.datasets import DatasetSpec, generate_dataset, open_dataset
from stackview.datasets.augment import (
    OnlineAugment,
    add_noise_psnr,
    apply_mask,
    contamination_textures,
    psnr_dB,
    random_blob_mask,
)
from stackview.datasets.generate import patch_atoms, sample_conditions, sample_labels, slip_grid
from stackview.engine.jobs import CancelToken
from stackview.errors import Cancelled, UsageError
from stackview.materials import get_material, moire_period_A

TINY = dict(patch_px=32, sampling_A=0.25, chunk=8, defocus_A=(40.0,), source_size_A=(0.65,))


def test_slip_grid_covers_the_canonical_domain():
    spec = DatasetSpec(mode="grid", step_A=0.5, **TINY)
    grid = slip_grid(spec)
    a, b = SlipLabels("ReS2").lengths_A
    assert grid[:, 0].min() == 0 and grid[:, 0].max() < a and a - grid[:, 0].max() <= 0.5
    assert grid[:, 1].max() <= b / 2 + 1e-9 and b / 2 - grid[:, 1].max() <= 0.5
    n_a = len(np.unique(grid[:, 0]))
    assert n_a == math.ceil(a / 0.5) and len(grid) == n_a * len(np.unique(grid[:, 1]))
    assert np.allclose(np.diff(np.unique(grid[:, 0])), 0.5)
    # 0.1 Å (paper) is about 2100 grid points for ReS2
    assert 2000 < len(slip_grid(DatasetSpec(mode="grid", step_A=0.1))) < 2200
    with pytest.raises(UsageError, match="grid"):
        slip_grid(DatasetSpec(layers=3, mode="grid", step_A=0.02))


def test_random_labels_are_canonical_and_seeded():
    spec = DatasetSpec(count=500, seed=4, **TINY)
    labels = sample_labels(spec)
    space = SlipLabels("ReS2")
    np.testing.assert_allclose(space.canonical(labels), labels, atol=1e-9)
    np.testing.assert_array_equal(labels, sample_labels(spec))
    assert not np.array_equal(labels, sample_labels(spec.replace(seed=5)))


def test_twist_positions_span_a_moire_period():
    spec = DatasetSpec(task="twist", material="MoS2", count=40, positions=20, seed=1, **TINY)
    labels = sample_labels(spec)
    assert labels.shape == (40, 1) and len(np.unique(labels)) == 2
    assert np.all((labels >= 0) & (labels <= 60))
    cond = sample_conditions(spec, len(labels))
    # the registry shift at the patch centre is uniform over a unit cell
    assert cond["registry_u"].min() < 0.2 and cond["registry_u"].max() > 0.8
    assert spec.orientation == "random"
    # moving the registry by one lattice vector is one full moiré period: the same patch
    m = get_material("MoS2")
    still = spec.replace(jitter_xy_A=0.0, jitter_z_A=0.0)
    c = {k: v[0] for k, v in cond.items()}
    size = spec.patch_px * spec.sampling_A

    def interior(xy):
        return xy[np.all(np.abs(xy - size / 2) < size / 2, axis=1)]

    xy0 = interior(patch_atoms(still, labels[0], c, 0)[0])
    c1 = dict(c, registry_u=c["registry_u"] + 1.0)
    xy1 = interior(patch_atoms(still, labels[0], c1, 0)[0])
    c2 = dict(c, registry_u=c["registry_u"] + 0.5)
    xy2 = interior(patch_atoms(still, labels[0], c2, 0)[0])

    def mismatch(p, q):
        return np.max(np.min(np.linalg.norm(p[:, None] - q[None], axis=-1), axis=1))

    assert len(xy0) == len(xy1) and mismatch(xy0, xy1) < 1e-6
    assert mismatch(xy0, xy2) > 0.5  # half a cell: another part of the moiré
    assert moire_period_A(m, float(labels[0, 0])) > m.a_A
    with pytest.raises(UsageError, match="outside"):
        sample_labels(DatasetSpec(task="twist", material="MoS2", theta_range_deg=(0, 90)))


def test_dataset_is_reproducible_from_seed_and_lazy(tmp_path):
    spec = DatasetSpec(count=20, seed=7, vacancy_range=(0.0, 0.1), hole_probability=0.5,
                       mask_probability=0.5, contamination_probability=0.5,
                       psnr_range_dB=(7.0, 30.0), **TINY)
    a = generate_dataset(spec, tmp_path / "a.zarr", scheduler="threads", workers=2)
    b = generate_dataset(spec, tmp_path / "b.zarr", scheduler="sync")
    da, db = open_dataset(a), open_dataset(b)
    assert len(da) == 20 and da.images.chunks == (8, 32, 32)
    ia, la = da.get(np.arange(20))
    ib, lb = db.get(np.arange(20))
    np.testing.assert_array_equal(ia, ib)  # same seed, other scheduler: identical
    np.testing.assert_array_equal(la, lb)
    for key in da.conditions:
        np.testing.assert_array_equal(da.conditions[key], db.conditions[key])
    assert np.isfinite(ia).all() and ia.std() > 0.05
    # provenance
    assert da.attrs["format"] == "stackview-dataset/1"
    assert da.attrs["spec"]["seed"] == 7 and da.attrs["label_names"] == ["Da_A", "Db_A"]
    assert da.spec == spec and da.summary()["n"] == 20
    # lazy: random access reads only the chunks it needs
    fresh = open_dataset(a)
    img, lab = fresh[13]
    np.testing.assert_array_equal(img, ia[13])
    assert list(fresh._cache) == [1]  # only chunk 1 (samples 8-15) was read
    sub, _ = da.get([19, 2])
    np.testing.assert_array_equal(sub, ia[[19, 2]])
    assert da.to_dask().chunks[0] == (8, 8, 4)
    # another seed gives other patches
    c = open_dataset(generate_dataset(spec.replace(seed=8), tmp_path / "c.zarr",
                                      scheduler="sync"))
    assert not np.array_equal(c.get(np.arange(4))[0], ia[:4])
    with pytest.raises(UsageError, match="exists"):
        generate_dataset(spec, tmp_path / "a.zarr")


def test_cancel_then_resume_gives_the_same_dataset(tmp_path):
    spec = DatasetSpec(count=24, seed=3, **TINY)
    ref = open_dataset(generate_dataset(spec, tmp_path / "ref.zarr", scheduler="sync"))
    cancel = CancelToken()

    def stop(done, total, message=""):
        if done == 1:
            cancel.cancel()

    with pytest.raises(Cancelled):
        generate_dataset(spec, tmp_path / "x.zarr", scheduler="sync", progress=stop,
                         cancel=cancel)
    assert not (tmp_path / "x.zarr").exists()
    with pytest.raises(UsageError, match="--resume"):
        open_dataset(tmp_path / "x.zarr")
    out = open_dataset(generate_dataset(spec, tmp_path / "x.zarr", scheduler="sync",
                                        resume=True))
    np.testing.assert_array_equal(out.get(np.arange(24))[0], ref.get(np.arange(24))[0])


def test_process_workers_stream_the_same_dataset_and_cancel_cleanly(tmp_path):
    spec = DatasetSpec(count=40, seed=5, vacancy_range=(0.0, 0.1), psnr_range_dB=(7.0, 30.0),
                       **TINY)
    ref = open_dataset(generate_dataset(spec, tmp_path / "ref.zarr", scheduler="sync"))
    got = open_dataset(generate_dataset(spec, tmp_path / "p.zarr", scheduler="processes",
                                        workers=2))
    np.testing.assert_array_equal(got.get(np.arange(40))[0], ref.get(np.arange(40))[0])
    cancel = CancelToken()

    def stop(done, total, message=""):
        if done == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        generate_dataset(spec, tmp_path / "x.zarr", scheduler="processes", workers=2,
                         progress=stop, cancel=cancel)
    assert not (tmp_path / "x.zarr").exists()
    out = open_dataset(generate_dataset(spec, tmp_path / "x.zarr", scheduler="processes",
                                        workers=2, resume=True))
    np.testing.assert_array_equal(out.get(np.arange(40))[0], ref.get(np.arange(40))[0])


def test_holes_remove_one_layer_in_a_disk():
    spec = DatasetSpec(count=1, **TINY)
    cond = {k: v[0] for k, v in sample_conditions(spec, 1).items()}
    xy, z, layer = patch_atoms(spec, np.array([1.0, 1.0]), cond, 0)
    cond.update(hole_fraction=0.25, hole_layer=1, hole_cx=0.5, hole_cy=0.5)
    xy_h, _, layer_h = patch_atoms(spec, np.array([1.0, 1.0]), cond, 0)
    size = spec.patch_px * spec.sampling_A
    r = math.sqrt(0.25 * size * size / math.pi)
    inside = np.sum((xy_h - size / 2) ** 2, axis=1) < r**2
    assert not np.any(inside & (layer_h == 1)) and np.any(inside & (layer_h == 0))
    assert (layer == 0).sum() == (layer_h == 0).sum()


def test_vacancies_remove_the_requested_fraction():
    spec = DatasetSpec(count=1, **TINY)
    cond = {k: v[0] for k, v in sample_conditions(spec, 1).items()}
    n0 = len(patch_atoms(spec, np.array([1.0, 1.0]), cond, 0)[0])
    cond["vacancy_ratio"] = 0.1
    n1 = len(patch_atoms(spec, np.array([1.0, 1.0]), cond, 0)[0])
    assert n1 / n0 == pytest.approx(0.9, abs=0.03)


def test_noise_hits_the_target_psnr_and_masks_their_fraction():
    rng = np.random.default_rng(0)
    clean = rng.random((128, 128)).astype(np.float32)
    for target in (7.0, 15.0, 30.0):
        noisy = add_noise_psnr(clean, target, rng)
        assert psnr_dB(clean, noisy) == pytest.approx(target, abs=0.15)
    mask = random_blob_mask((128, 128), 0.2, rng)
    assert mask.mean() == pytest.approx(0.2, abs=0.01)
    masked = apply_mask(clean, 0.2, rng)
    assert np.mean(masked != clean) == pytest.approx(0.2, abs=0.01)
    tex = contamination_textures()
    assert len(tex) == 4 and all(t.shape == (320, 320) for t in tex)
    aug = OnlineAugment(psnr_range_dB=(10, 20), mask_probability=0.5,
                        contamination_probability=0.5, gamma_range=(0.8, 1.2))
    batch = np.stack([clean] * 4)
    out1 = aug(batch, np.random.default_rng(1))
    out2 = aug(batch, np.random.default_rng(1))
    np.testing.assert_array_equal(out1, out2)
    assert out1.shape == batch.shape and not np.array_equal(out1[0], clean)


def test_styles_and_validation():
    with pytest.raises(UsageError, match="style bundle"):
        DatasetSpec(style="drit")
    with pytest.raises(UsageError, match="random orientation"):
        DatasetSpec(material="MoS2", orientation="random")
    DatasetSpec(material="ReS2", orientation="random")  # 2-fold: allowed
    with pytest.raises(UsageError):
        DatasetSpec(task="twist", layers=3)
    spec = DatasetSpec(count=10, **TINY)
    assert DatasetSpec.from_dict(spec.to_dict()) == spec


def test_physics_style_uses_the_style_package(tmp_path):
    spec = DatasetSpec(count=8, style="physics", seed=2, **TINY)
    try:
        import stackview.style.physics_noise  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="physics_noise"):
            generate_dataset(spec, tmp_path / "p.zarr", scheduler="sync")
        return
    ds = open_dataset(generate_dataset(spec, tmp_path / "p.zarr", scheduler="sync"))
    clean = open_dataset(generate_dataset(spec.replace(style="clean"), tmp_path / "c.zarr",
                                          scheduler="sync"))
    assert not np.array_equal(ds.get(np.arange(8))[0], clean.get(np.arange(8))[0])


def test_dataset_cli(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    assert main(["dataset", "make", str(out), "--task", "twist", "--material", "MoS2",
                 "--theta-range", "10", "20", "--theta-step", "5", "--positions", "3",
                 "--patch-px", "32", "--sampling", "0.25", "--defocus", "40",
                 "--source-size", "0.65", "--scheduler", "sync"]) == 0
    ds = open_dataset(out)
    np.testing.assert_allclose(np.unique(ds.labels), [10.0, 15.0, 20.0])
    assert len(ds) == 9
    assert "dataset make" in ds.attrs["command"] or ds.attrs["command"].startswith("stackview")
    capsys.readouterr()
    assert main(["dataset", "info", str(out)]) == 0
    assert "theta_deg" in capsys.readouterr().out
    assert main(["dataset", "make", str(out), "--scheduler", "sync"]) == 2  # exists
    assert main(["dataset", "make", str(tmp_path / "x.zarr"), "--scheduler", "nowhere"]) == 2


def test_dask_distributed_scheduler_gives_the_same_dataset(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = DatasetSpec(count=16, seed=11, **TINY)
    ref = open_dataset(generate_dataset(spec, tmp_path / "ref.zarr", scheduler="sync"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        path = generate_dataset(spec, tmp_path / "dist.zarr",
                                scheduler=cluster.scheduler_address)
    out = open_dataset(path)
    np.testing.assert_array_equal(out.get(np.arange(16))[0], ref.get(np.arange(16))[0])
    with pytest.raises(UsageError, match="scheduler"):
        generate_dataset(spec, tmp_path / "x.zarr", scheduler="bogus")


def test_custom_optics_are_named_by_their_values(tmp_path):
    spec = DatasetSpec(count=4, optics="kv=200, convergence=25, adf=45-180", **TINY)
    assert spec.optics == "kv=200,convergence=25,adf=45-180"  # one spelling
    ds = open_dataset(generate_dataset(spec, tmp_path / "c.zarr", scheduler="sync"))
    assert ds.attrs["optics"]["energy_kV"] == 200.0
    preset = DatasetSpec(count=4, optics="ReS2-300kV", **TINY)
    # 200 kV and a wider probe give another image of the same atoms
    a = np.asarray(ds.images[0], dtype=np.float32)
    b = np.asarray(open_dataset(generate_dataset(preset, tmp_path / "p.zarr",
                                                 scheduler="sync")).images[0], dtype=np.float32)
    assert np.abs(a - b).max() > 0.01
    with pytest.raises(UsageError, match="unknown optics 'Titan'"):
        DatasetSpec(count=4, optics="Titan", **TINY)


def test_concat_source_reads_each_sample_from_its_part():
    from stackview.datasets.store import ArraySource, ConcatSource

    a = ArraySource(np.arange(3 * 4, dtype=np.float32).reshape(3, 2, 2), np.arange(3.0))
    b = ArraySource(100 + np.arange(2 * 4, dtype=np.float32).reshape(2, 2, 2), 10 + np.arange(2.0))
    both = ConcatSource([a, b])
    assert len(both) == 5
    images, labels = both.get([4, 0, 3, 2])
    np.testing.assert_array_equal(labels[:, 0], [11.0, 0.0, 10.0, 2.0])
    np.testing.assert_array_equal(images[0], b.images[1])
    np.testing.assert_array_equal(images[3], a.images[2])
    with pytest.raises(IndexError):
        both.get([5])

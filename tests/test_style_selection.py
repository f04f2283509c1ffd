"""Selection (prong I): t-SNE + k-means keeps the simulations that look like the experiment."""

import json

import numpy as np
import pytest
import torch
from style_images import experimental, lattice, stripes

from stackview.errors import UsageError
from stackview.style import selection
from stackview.style.selection import image_features, load_selection, select_simulations


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    sims = [lattice(96, shift=rng.uniform(0, 8, 2)) for _ in range(6)]
    sims += [stripes(96, period_px=rng.uniform(7, 12), theta=rng.uniform(0, 3)) for _ in range(6)]
    exps = [experimental(96, seed=s) for s in range(3)]
    return sims, exps


@pytest.fixture(autouse=True)
def no_hub_weights(monkeypatch, tmp_path):
    """An empty torch hub cache: the offline features must be used."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_selection_keeps_the_lattices(images, tmp_path):
    sims, exps = images
    names = [f"lat{i}" for i in range(6)] + [f"stripe{i}" for i in range(6)]
    r = select_simulations(sims, exps, simulation_names=names, seed=0)
    assert r.feature_kind == "spectral" and "VGG16" in r.feature_note
    assert sorted(r.chosen) == list(range(6))
    assert all(n.startswith("lat") for n in r.chosen_names)
    # nearest first
    assert list(r.distances[r.chosen]) == sorted(r.distances[r.chosen])
    assert r.embedding.shape == (15, 2) and r.perplexity == pytest.approx(14 / 3)
    assert set(r.labels[12:]) == {r.experimental_cluster}
    r.save_json(tmp_path / "selection.json")
    r.plot(tmp_path / "selection.png")
    data = load_selection(tmp_path / "selection.json")
    assert data["feature_kind"] == "spectral" and data["chosen"] == r.chosen_names
    assert len(data["simulations"]) == 12 and len(data["experimental"]) == 3
    assert (tmp_path / "selection.png").stat().st_size > 1000
    # keep limits the count, nearest first
    r2 = select_simulations(sims, exps, keep=2, seed=0)
    assert r2.chosen == r.chosen[:2]


def test_perplexity_paper_value_for_large_sets():
    # the paper's 41 simulations + 3 experimental images keep perplexity 12
    rng = np.random.default_rng(0)
    sims = [lattice(48, shift=rng.uniform(0, 8, 2)) for _ in range(41)]
    exps = [experimental(48, seed=s) for s in range(3)]
    assert select_simulations(sims, exps).perplexity == 12


def test_vgg16_is_used_when_weights_are_cached(images, monkeypatch, tmp_path):
    sims, exps = images
    fake = tmp_path / "vgg16-397923af.pth"
    fake.write_bytes(b"")
    monkeypatch.setattr(selection, "vgg16_weights_path", lambda: fake)
    monkeypatch.setattr(
        selection,
        "vgg16_features",
        lambda imgs, path: np.stack([selection.spectral_blocks(a)["radial"] for a in imgs]),
    )
    feats, kind, note = image_features([*sims, *exps], "auto")
    assert kind == "vgg16" and "vgg16-397923af.pth" in note and feats.shape[0] == 15


def test_vgg16_requested_without_weights_and_bad_input(images):
    sims, exps = images
    with pytest.raises(UsageError, match="VGG16"):
        image_features(sims, "vgg16")
    with pytest.raises(UsageError):
        image_features(sims, "resnet")
    with pytest.raises(UsageError):
        select_simulations(sims[:1], exps)
    with pytest.raises(UsageError):
        load_selection("/nonexistent/selection.json")


def test_selection_json_is_plain(images, tmp_path):
    sims, exps = images
    r = select_simulations(sims[:4], exps[:1], seed=0)
    r.save_json(tmp_path / "s.json")
    json.loads((tmp_path / "s.json").read_text())  # valid JSON, no numpy types

"""Model bundles: save/load round trip, refusal of pickles and other files, registry, CLI."""

import json
import pickle

import numpy as np
import pytest
import torch

from stackview.cli import main
from stackview.errors import UsageError
from stackview.inference.predict import aggregate, predict, predict_many, tta_views
from stackview.inference.regressor import RegressorSpec, build_regressor
from stackview.materials import get_material, stack_arrays
from stackview.models import (
    ModelCard,
    check_safetensors,
    list_models,
    load_bundle,
    read_card,
    save_bundle,
    update_card,
)


def _card(spec, **kw):
    return ModelCard(name="x", spec=spec.to_dict(), sampling_A=0.2, patch_px=32, **kw)


@pytest.fixture
def bundle_stem(tmp_path):
    spec = RegressorSpec(backbone="tiny", material="ReS2")
    model = build_regressor(spec, seed=0).eval()
    stem = tmp_path / "ReS2_tiny"
    save_bundle(stem, model, _card(spec, training={"command": "stackview train ..."}))
    return stem, model


def test_bundle_round_trip_fp16(bundle_stem):
    stem, model = bundle_stem
    assert stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()
    bundle = load_bundle(stem.with_suffix(".json"))
    assert bundle.card.name == "ReS2_tiny" and bundle.card.weights_dtype == "float16"
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        ref, out = model(x), bundle.model(x)
    assert torch.allclose(ref, out, atol=5e-3)  # fp16 parameters
    card = json.loads(stem.with_suffix(".json").read_text())
    assert card["format"] == "stackview-model-bundle/1" and card["kind"] == "regressor"
    conv = card["label_convention"]
    assert conv["names"] == ["Da_A", "Db_A"] and conv["unit"] == "A"
    np.testing.assert_allclose(conv["lattice"]["a_vec_A"], get_material("ReS2").a_vec_A, atol=1e-6)
    assert card["patch_nm"] == pytest.approx(0.64)
    assert len(card["weights_sha256"]) == 64


def test_bundle_fp32_is_exact(tmp_path):
    spec = RegressorSpec(backbone="tiny", task="twist", material="MoS2")
    model = build_regressor(spec, seed=1).eval()
    save_bundle(tmp_path / "t", model, _card(spec), half=False)
    bundle = load_bundle(tmp_path / "t")
    for (k, a), (_, b) in zip(model.state_dict().items(), bundle.model.state_dict().items(),
                              strict=True):
        assert torch.equal(a.float(), b.float()), k
    assert read_card(tmp_path / "t.safetensors").label_convention()["names"] == ["theta_deg"]


def test_pickle_and_random_files_are_refused(tmp_path, bundle_stem):
    evil = tmp_path / "model.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"weights": [1, 2, 3]}, fh)
    with pytest.raises(UsageError, match="never unpickles"):
        load_bundle(evil)
    torch.save({"w": torch.zeros(2)}, tmp_path / "torch.pth")  # zip-based torch file
    with pytest.raises(UsageError, match="never unpickles"):
        load_bundle(tmp_path / "torch.pth")
    # a pickle posing as a bundle's weights
    stem, _ = bundle_stem
    w = stem.with_suffix(".safetensors")
    w.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UsageError, match="never unpickles"):
        load_bundle(stem)
    rnd = tmp_path / "random.bin"
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UsageError, match="not a safetensors"):
        check_safetensors(rnd)
    with pytest.raises(UsageError):
        load_bundle(rnd)
    text = tmp_path / "notes.json"
    text.write_text('{"hello": 1}')
    with pytest.raises(UsageError, match="not a stackview model bundle"):
        read_card(text)


def test_tampered_weights_are_detected(bundle_stem):
    stem, _ = bundle_stem
    w = stem.with_suffix(".safetensors")
    data = bytearray(w.read_bytes())
    data[-3] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="SHA-256"):
        load_bundle(stem)


def test_registry_and_cli(bundle_stem, capsys):
    stem, _ = bundle_stem
    assert main(["models", "install", str(stem.with_suffix(".json"))]) == 0
    names = [e.name for e in list_models()]
    assert "ReS2_tiny" in names
    assert load_bundle("ReS2_tiny").card.material == "ReS2"  # by name
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    assert "ReS2_tiny" in capsys.readouterr().out
    assert main(["models", "show", "ReS2_tiny"]) == 0
    out = capsys.readouterr().out
    assert "Da_A, Db_A" in out and "stackview train" in out
    assert main(["models", "show", "ReS2_tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["material"] == "ReS2"
    assert main(["models", "show", "no-such-model"]) == 2
    update_card(stem, accuracy={"test": {"mean_A": 0.04, "p95_A": 0.08}})
    assert read_card(stem).accuracy["test"]["mean_A"] == 0.04


def test_predict_returns_values_and_uncertainty(bundle_stem):
    stem, _ = bundle_stem
    bundle = load_bundle(stem)
    rng = np.random.default_rng(0)
    patch = rng.random((40, 40)).astype(np.float32)
    p = predict(patch, bundle)
    assert p.values.shape == (2,) and p.names == ("Da_A", "Db_A")
    space = bundle.label_space
    np.testing.assert_allclose(space.canonical(p.values), p.values, atol=1e-9)
    assert p.uncertainty >= 0 and p.views.shape[0] == len(tta_views(bundle.card))
    plain = predict(patch, bundle, tta=False)
    assert plain.uncertainty == 0
    # a patch at another sampling is resampled; too small a patch is refused
    assert predict_many([patch, patch], bundle, sampling_A=0.3, tta=False)[0].values.shape == (2,)
    with pytest.raises(UsageError, match="smaller than"):
        predict(patch, bundle, sampling_A=0.1)  # 40 px at 0.1 Å/px is 20 px at 0.2 Å/px
    with pytest.raises(UsageError, match="smaller than"):
        predict(patch[:20, :20], bundle)


def test_aggregate_is_symmetry_aware():
    from stackview.core.labels import SlipLabels, TwistLabels

    s = SlipLabels("ReS2")
    a, b = s.lengths_A
    # the same slip reported as different equivalents by different views
    views = np.array([[0.02, 0.0], [-0.02 + a, 0.0], [-0.01, -0.0 + b], [0.01, 0.0]])
    mean, aligned, rms, _ = aggregate(views, s)
    assert s.distance(mean, [0.0, 0.0]) < 0.02
    assert rms < 0.02
    t = TwistLabels("MoS2")
    mean, _, rms, _ = aggregate(np.array([[0.2], [-0.2], [119.9]]), t)
    assert mean[0] == pytest.approx(0.1667, abs=1e-3) and rms < 0.1


def test_rot180_view_keeps_slip_labels_only_for_even_order():
    """Rotating a ReS2 bilayer by 180° gives the bilayer with slip −D (≡ D); not so for MoS2,
    whose half-turned view keeps the label for another reason (its stacking families)."""

    def projected(material, slip, origin):
        arr = stack_arrays(material, [slip], fov_A=(30, 30), margin_A=0, origin_A=origin)
        return arr.positions[:, :2], arr.numbers

    def same_up_to_translation(p, z, q, w, cell):
        # translate so that one atom of the first species coincides, then compare as sets
        inv = np.linalg.inv(cell)
        for j in np.nonzero(w == z[0])[0]:
            t = q[j] - p[0]
            ok = True
            for i in range(0, len(p), max(1, len(p) // 40)):
                d = (q[w == z[i]] - p[i] - t) @ inv
                d -= np.round(d)
                if np.min(np.linalg.norm(d @ cell, axis=1)) > 1e-3:
                    ok = False
                    break
            if ok:
                return True
        return False

    res2 = get_material("ReS2")
    slip = np.array([1.3, 0.7])
    p, z = projected(res2, slip, (0.0, 0.0))
    q, w = projected(res2, -slip, (0.0, 0.0))
    # both stacks are periodic with the monolayer cell, so comparing sites modulo the lattice
    # compares the images (the projected bilayers) up to a translation
    assert same_up_to_translation(-p, z, q, w, res2.cell_2d)
    mos2 = get_material("MoS2")
    pm, zm = projected(mos2, [1.0, 0.4], (0.0, 0.0))
    qm, wm = projected(mos2, [-1.0, -0.4], (0.0, 0.0))
    assert not same_up_to_translation(-pm, zm, qm, wm, mos2.cell_2d)
    views = [name for name, _, _ in tta_views(_card(RegressorSpec(backbone="tiny",
                                                                  material="ReS2")))]
    assert "rot180" in views
    # MoS2: the half-turned bilayer is not the −D one (above), but the labels of a hexagonal
    # bilayer name its stacking whichever way the layers point (the training data hold both
    # half turns), so the view keeps the label as it is
    mos2_views = {name: back for name, _, back in tta_views(_card(RegressorSpec(
        backbone="tiny", material="MoS2")))}
    assert "rot180" in mos2_views and "flip_x" in mos2_views
    np.testing.assert_allclose(mos2_views["rot180"](np.array([1.0, 0.4])), [1.0, 0.4])

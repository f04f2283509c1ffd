"""Translation (determinism, attributes, tiling without seams, stacks, resampling) and style
bundles (round trip, integrity, refusal of pickles)."""

import json
import pickle

import numpy as np
import pytest
import torch
from style_images import (
    experimental,
    lattice,
    one_torch_thread,  # noqa: F401  (autouse fixture)
)

from stackview.errors import UsageError
from stackview.style.bundle import load_bundle, read_card, save_bundle, update_card
from stackview.style.config import PRESETS
from stackview.style.images import save_png
from stackview.style.networks import freeze_statistics, record_statistics, release_statistics
from stackview.style.trainer import StyleTrainer
from stackview.style.translate import StyleTranslator, translate_files


@pytest.fixture(scope="module")
def trained():
    """A tiny model after a few fast steps (so that its output depends on its input)."""
    sims = [lattice(80, shift=(i, 2 * i)) for i in range(2)]
    exps = [experimental(80, seed=s) for s in range(2)]
    tr = StyleTrainer(PRESETS["tiny"].replace(lr=1e-2, sampling_A=0.2), sims, exps, seed=0)
    for _ in range(6):
        tr.step()
    return tr


@pytest.fixture(scope="module")
def translator(trained):
    return StyleTranslator(
        trained.model,
        {"reference_attribute": trained.reference_attribute().tolist(), "sampling_A": 0.2},
    )


def test_translation_is_deterministic(translator):
    img = lattice(64)
    a = translator.translate(img, seed=5)
    assert a.shape == img.shape and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, translator.translate(img, seed=5))
    assert not np.array_equal(a, translator.translate(img, seed=6))
    z = translator.attribute(seed=5)
    assert np.array_equal(a, translator.translate(img, code=z))
    ref = translator.translate(img)
    assert np.array_equal(ref, translator.translate(img, code=translator.reference))
    with pytest.raises(UsageError):
        translator.translate(img, code=[1.0, 2.0])
    with pytest.raises(UsageError):
        translator.attribute(seed=1, code=z)
    with pytest.raises(UsageError):
        translator.translate(np.zeros((8, 64)))
    # odd sizes are padded to the network stride and cropped back
    assert translator.translate(lattice(37, m=45)).shape == (37, 45)


def test_tiled_translation_has_no_seams(translator):
    img = lattice(256, m=280)
    whole = translator.translate(img, tile_px=512)
    # all tiles normalised with the whole image's statistics: identical to the whole image
    tiled = translator.translate(img, tile_px=160, stats_px=512)
    assert np.abs(tiled - whole).max() < 1e-3
    gx_t = np.abs(np.diff(tiled, axis=1)).mean(0)
    gx_w = np.abs(np.diff(whole, axis=1)).mean(0)
    assert np.max(gx_t / gx_w) < 1.01  # no column with an extra step (a seam)
    # default: statistics of the central tile-sized crop, shared by all tiles — equal to the
    # whole image run with those same statistics, i.e. still seamless
    tiled_default = translator.translate(img, tile_px=160)
    model, z = translator.model, translator.reference
    record_statistics(model)
    try:
        top, left = (256 - 160) // 2 // 4 * 4, (280 - 160) // 2 // 4 * 4
        translator._run_padded(img[top : top + 160, left : left + 160], z)
        freeze_statistics(model)
        reference = np.clip(translator._run_padded(img, z), 0, 1)
    finally:
        release_statistics(model)
    assert np.abs(tiled_default - reference).max() < 1e-3
    with pytest.raises(UsageError):
        translator.translate(img, tile_px=30)
    with pytest.raises(UsageError):
        translator.translate(img, tile_px=64, overlap_px=100)


def test_translate_many_and_diversity(translator):
    stack = np.stack([lattice(48, shift=(i, 0)) for i in range(3)])
    same = translator.translate_many(stack, seed=1)
    assert len(same) == 3
    diverse = translator.translate_many(stack, seed=1, diverse=True)
    again = translator.translate_many(stack, seed=1, diverse=True)
    assert all(np.array_equal(a, b) for a, b in zip(diverse, again, strict=True))
    # every image gets its own code (drawn from the seeded stream), unlike ``same``
    assert np.array_equal(same[1], translator.translate(stack[1], seed=1))
    assert not np.array_equal(diverse[1], same[1])


def test_input_sampling_is_respected(translator, monkeypatch):
    """An image 2x finer than the model's 0.2 Å/px is translated at the model's sampling (the
    network sees it at half size) and the result brought back to the input's grid."""
    from scipy import ndimage

    from stackview.style.images import normalise, resample

    img = lattice(64)
    seen = []
    run = translator._run_padded
    monkeypatch.setattr(translator, "_run_padded",
                        lambda x, z: seen.append(x.shape) or run(x, z))
    out = translator.translate(img, input_sampling_A=0.1)
    assert out.shape == img.shape and seen == [(32, 32)]
    # the same as resampling to the model's sampling, translating there and zooming back
    at_model = translator.translate(resample(normalise(img), 0.5), normalise_input=False)
    back = ndimage.zoom(at_model, 2.0, order=1, mode="reflect", grid_mode=True)
    np.testing.assert_allclose(out, np.clip(back, 0, 1), atol=1e-6)
    assert np.abs(out - translator.translate(img)).max() > 0.05  # not the unscaled translation
    # the model's own sampling is not resampled at all
    seen.clear()
    same = translator.translate(img, input_sampling_A=0.2)
    assert np.array_equal(same, translator.translate(img))
    assert seen == [(64, 64), (64, 64)]


def test_bundle_round_trip(trained, tmp_path):
    ref = trained.reference_attribute()
    weights = save_bundle(
        tmp_path / "style_test",
        trained.model,
        ref,
        {"material": "ReS2", "microscope": {"voltage_kV": 300}},
    )
    assert weights.name == "style_test.safetensors"
    card = read_card(tmp_path / "style_test.json")
    assert card["material"] == "ReS2" and card["sampling_A"] == 0.2
    assert card["config"]["name"] == "tiny" and len(card["weights_sha256"]) == 64
    model, card2 = load_bundle(tmp_path)  # the folder works too
    assert card2 == card
    assert not any(k.startswith("dis") for k in model.state_dict())
    a = StyleTranslator(model, card).translate(lattice(64))
    b = StyleTranslator(trained.model, card).translate(lattice(64))
    assert np.array_equal(a, b)
    update_card(weights, metrics={"kl": 0.1})
    assert read_card(weights)["metrics"] == {"kl": 0.1}
    # tampered weights are refused
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(UsageError, match="SHA-256"):
        load_bundle(weights)


def test_bundle_refuses_pickles(trained, tmp_path):
    weights = save_bundle(tmp_path / "s", trained.model, trained.reference_attribute())
    card = json.loads(weights.with_suffix(".json").read_text())
    # a torch.save file (zip + pickle) and a plain pickle in place of the weights
    torch.save(trained.model.translator_state_dict(), weights)
    card["weights_sha256"] = None
    weights.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(UsageError, match="never unpickles"):
        load_bundle(weights)
    weights.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(UsageError, match="never unpickles"):
        load_bundle(weights)
    with pytest.raises(UsageError):
        load_bundle(tmp_path / "missing.json")


def test_translate_files_and_stacks(translator, tmp_path):
    save_png(tmp_path / "in" / "a.png", lattice(40))
    np.save(tmp_path / "in" / "stack.npy", np.stack([lattice(40), lattice(40, shift=(1, 1))]))
    out = translate_files(
        translator,
        [tmp_path / "in" / "a.png", tmp_path / "in" / "stack.npy"],
        tmp_path / "out",
        seed=2,
    )
    assert [p.name for p in out] == ["a.png", "stack.npy"]
    stack = np.load(tmp_path / "out" / "stack.npy")
    assert stack.shape == (2, 40, 40) and stack.dtype == np.float32


def test_bf16_translation_is_close(trained):
    img = lattice(64)
    fp32 = StyleTranslator(trained.model).translate(img)
    bf16 = StyleTranslator(trained.model, bf16=True).translate(img)
    assert np.abs(fp32 - bf16).max() < 0.03

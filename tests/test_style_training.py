"""Training: a loss that falls, checkpoint/resume identical to an uninterrupted run, cancel,
learning-rate schedule, previews, augmentation."""

import json

import numpy as np
import pytest
import torch
from style_images import (
    experimental,
    lattice,
    one_torch_thread,  # noqa: F401  (autouse fixture)
)

from stackview.engine.jobs import CancelToken
from stackview.errors import Cancelled, UsageError
from stackview.style.augment import AffineAugment
from stackview.style.config import PRESETS
from stackview.style.trainer import CHECKPOINT_NAME, StyleTrainer, train_style

TINY = PRESETS["tiny"].replace(sampling_A=0.2)


@pytest.fixture(scope="module")
def data():
    sims = [lattice(80, shift=(i, 2 * i)) for i in range(2)]
    exps = [experimental(80, seed=s) for s in range(2)]
    return sims, exps


def _recon_error(trainer, x):
    """Deterministic self-reconstruction L1 of domain A (eval mode, posterior means)."""
    m = trainer.model.eval()
    with torch.no_grad():
        mu, _ = m.attr_a(x)
        err = (m.gen.decode(m.content.encode(x, "a"), mu, "a") - x).abs().mean().item()
    m.train()
    return err


def test_reconstruction_loss_falls(data):
    sims, exps = data
    cfg = TINY.replace(lr=1e-2, iterations=100)
    tr = StyleTrainer(cfg, sims, exps, seed=0)
    x = torch.from_numpy(np.stack([s[:32, :32] for s in sims])[:, None]) * 2 - 1
    before = _recon_error(tr, x)
    history = [tr.step() for _ in range(5)]
    after = _recon_error(tr, x)
    assert after < 0.85 * before
    assert all(np.isfinite(v) for h in history for v in h.values())
    recon = [h["self_recon"] + h["cycle"] for h in history]
    assert recon[-1] < recon[0]


def test_checkpoint_resume_is_identical(data, tmp_path):
    sims, exps = data
    straight = StyleTrainer(TINY, sims, exps, seed=3)
    for _ in range(4):
        straight.step()

    first = StyleTrainer(TINY, sims, exps, seed=3)
    first.step()
    first.step()
    path = first.save_checkpoint(tmp_path)
    assert path.name == CHECKPOINT_NAME and (tmp_path / "checkpoint.json").is_file()
    resumed = StyleTrainer(TINY, sims, exps, seed=99)  # seed is restored from the checkpoint
    resumed.load_checkpoint(tmp_path)
    assert resumed.iteration == 2 and resumed.seed == 3
    for (k, a), b in zip(
        first.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    resumed.step()
    resumed.step()
    assert resumed.iteration == 4
    for (k, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["iteration"] == 2 and meta["config"]["name"] == "tiny"


def test_resume_refuses_other_config(data, tmp_path):
    sims, exps = data
    StyleTrainer(TINY, sims, exps).save_checkpoint(tmp_path)
    other = StyleTrainer(TINY.replace(width=6), sims, exps)
    with pytest.raises(UsageError):
        other.load_checkpoint(tmp_path)
    with pytest.raises(UsageError):
        other.load_checkpoint(tmp_path / "missing")


def test_train_job_cancel_then_resume(data, tmp_path):
    sims, exps = data
    cfg = TINY.replace(iterations=4)
    token = CancelToken()
    seen = []

    def progress(done, total, message=""):
        seen.append(done)
        if done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        train_style(
            cfg, sims, exps, tmp_path, progress=progress, cancel=token, preview_every=1, log_every=1
        )
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["iteration"] == 2
    assert (tmp_path / "previews" / "iter_000002.png").is_file()
    assert not (tmp_path / "style.json").exists()
    with pytest.raises(UsageError):  # a checkpoint is there: refuse to start over silently
        train_style(cfg, sims, exps, tmp_path)
    bundle = train_style(
        cfg,
        sims,
        exps,
        tmp_path,
        resume=True,
        preview_every=0,
        log_every=1,
        card={"material": "test"},
    )
    card = json.loads(bundle.with_suffix(".json").read_text())
    assert card["training"]["iterations"] == 4
    assert card["material"] == "test" and card["sampling_A"] == 0.2
    assert len(card["reference_attribute"]) == cfg.attr_dim
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["iteration"] for h in history] == [1, 2, 3, 4]


def test_fine_tune_from_checkpoint_or_bundle(data, tmp_path):
    sims, exps = data
    cfg = TINY.replace(iterations=2)
    bundle = train_style(cfg, sims, exps, tmp_path / "base", preview_every=0)
    trained = StyleTrainer(cfg, sims, exps)
    trained.load_checkpoint(tmp_path / "base")
    # a stronger Eq. (1) weight, a new schedule: every weight starts from the checkpoint
    tuned = StyleTrainer(cfg.replace(lambda_consistency=10.0, iterations=5), sims, exps, seed=7)
    assert "iteration 2" in tuned.init_weights(tmp_path / "base")
    assert tuned.iteration == 0
    for (k, a), b in zip(
        trained.model.state_dict().items(), tuned.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    # from the bundle: encoders and generators, discriminators as initialised
    fresh = StyleTrainer(cfg, sims, exps, seed=7)
    dis_before = {k: v.clone() for k, v in fresh.model.state_dict().items() if k.startswith("dis")}
    fresh.init_weights(bundle.parent / "style")
    state = fresh.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in dis_before.items())
    before = trained.model.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in state.items() if not k.startswith("dis"))
    with pytest.raises(UsageError, match="another network"):
        StyleTrainer(cfg.replace(width=6), sims, exps).init_weights(tmp_path / "base")
    out = train_style(cfg.replace(lambda_consistency=10.0), sims, exps, tmp_path / "tuned",
                      init_from=tmp_path / "base", preview_every=0)
    card = json.loads(out.with_suffix(".json").read_text())
    assert "iteration 2" in card["training"]["init_from"]


def test_learning_rate_schedule(data):
    sims, exps = data
    tr = StyleTrainer(TINY.replace(iterations=10, decay_start=0.2), sims, exps)
    lrs = [tr.lr_at(i) for i in range(10)]
    assert lrs[0] == lrs[1] == TINY.lr
    assert lrs[2] == TINY.lr and lrs[9] == pytest.approx(TINY.lr / 8)
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_preview_grid(data):
    sims, exps = data
    grid = StyleTrainer(TINY, sims, exps).preview(n=3)
    assert grid.shape == (4 * 32, 3 * 32)
    assert 0 <= grid.min() and grid.max() <= 1


def test_augmentation():
    aug = AffineAugment(32)
    img = lattice(128)
    a = aug.sample(img, np.random.default_rng(0))
    b = aug.sample(img, np.random.default_rng(0))
    assert a.shape == (32, 32) and a.dtype == np.float32 and np.array_equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, aug.sample(img, np.random.default_rng(1)))
    # a constant image stays constant under any rotation / crop / flip
    flat = aug.sample(np.full((100, 100), 0.3, np.float32), np.random.default_rng(2))
    assert np.allclose(flat, 0.3)
    # no rotation, crop = mean fraction, no flip: magnification 1, a plain crop of the image
    plain = AffineAugment(32, rotation_deg=0, crop_fraction=(0.5, 0.5), flip_probability=0)
    ramp = np.tile(np.arange(100, dtype=np.float32), (100, 1))
    p = plain.sample(ramp, np.random.default_rng(3))
    assert np.allclose(np.diff(p, axis=1), 1.0, atol=1e-4)
    assert np.allclose(np.diff(p, axis=0), 0.0, atol=1e-4)
    # flips: with probability 1 both axes are mirrored
    flip = AffineAugment(32, rotation_deg=0, crop_fraction=(0.5, 0.5), flip_probability=1)
    q = flip.sample(ramp, np.random.default_rng(3))
    assert np.allclose(np.diff(q, axis=1), -1.0, atol=1e-4)
    # rotation by up to 45°: a ramp along x gets a y component
    rot = AffineAugment(32, rotation_deg=45, crop_fraction=(0.5, 0.5), flip_probability=0)
    slopes = [np.diff(rot.sample(ramp, np.random.default_rng(s)), axis=0).mean() for s in range(20)]
    assert max(np.abs(slopes)) > 0.3 and max(np.abs(slopes)) <= np.sin(np.pi / 4) + 1e-3
    rng = np.random.default_rng(4)
    batch = aug.batch([img, img], 5, rng)
    assert batch.shape == (5, 1, 32, 32)
    assert aug.view_px == pytest.approx(32 / 0.525)

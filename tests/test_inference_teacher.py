"""Fine-tuning toward a teacher's reading of the isolated window (``train --teacher``)."""

import numpy as np
import pytest
import torch

from stackview.datasets.store import ArraySource
from stackview.errors import UsageError
from stackview.inference.regressor import RegressorSpec, build_regressor
from stackview.inference.train import TrainConfig, context_crop, train
from stackview.models.bundle import save_bundle
from stackview.models.card import ModelCard

WINDOW, MARGIN = 32, 8


def _save_teacher(folder, material="ReS2", window=WINDOW, seed=1):
    spec = RegressorSpec(backbone="tiny", material=material, head="invariant")
    model = build_regressor(spec, seed=seed).eval()
    card = ModelCard(name="tiny_teacher", spec=spec.to_dict(), sampling_A=0.25,
                     patch_px=window, orientation="aligned")
    save_bundle(folder / "tiny_teacher", model, card, half=False)
    return folder / "tiny_teacher", model


def _student_spec():
    return RegressorSpec(backbone="tiny", material="ReS2", head="invariant", context_px=MARGIN,
                         window_px=WINDOW)


def _gap_to_teacher(student, teacher, images):
    """Mean squared difference of the student's context reading and the teacher's reading of
    the isolated window, on the same fields."""
    with torch.no_grad():
        s = student(torch.from_numpy(context_crop(images, _student_spec()).copy()), raw=True)
        c = (images.shape[-1] - WINDOW) // 2
        t = teacher(torch.from_numpy(images[:, c:c + WINDOW, c:c + WINDOW].copy()), raw=True)
    return float(torch.mean((s - t) ** 2))


def test_the_student_is_pulled_to_the_teachers_reading_of_the_isolated_window(tmp_path):
    path, teacher = _save_teacher(tmp_path)
    rng = np.random.default_rng(0)
    images = rng.random((32, 64, 64)).astype(np.float32)
    labels = rng.random((32, 2)) * [6.0, 3.0]
    gaps = {}
    for weight in (0.0, 100.0):
        config = TrainConfig(steps=40, batch_size=8, lr=3e-3, seed=0, teacher_weight=weight)
        r = train(_student_spec(), ArraySource(images, labels), config,
                  teacher=path if weight else None)
        gaps[weight] = _gap_to_teacher(r.model, teacher, images)
    # the labels alone lead elsewhere; the teacher's term brings the readings to the teacher's
    assert gaps[100.0] < 0.3 * gaps[0.0]


def test_a_teacher_that_does_not_fit_is_one_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    source = ArraySource(rng.random((8, 64, 64)).astype(np.float32), rng.random((8, 2)))
    config = TrainConfig(steps=1, batch_size=4, teacher_weight=1.0)
    (tmp_path / "a").mkdir()
    other, _ = _save_teacher(tmp_path / "a", material="MoS2")
    with pytest.raises(UsageError, match="teacher tiny_teacher is a MoS2"):
        train(_student_spec(), source, config, teacher=other)
    (tmp_path / "b").mkdir()
    wide, _ = _save_teacher(tmp_path / "b", window=48)  # 1.5 x the student's window
    with pytest.raises(UsageError, match="reads 48 px windows"):
        train(_student_spec(), source, config, teacher=wide)
    with pytest.raises(UsageError, match="teacher weight"):
        train(_student_spec(), source, TrainConfig(steps=1, batch_size=4), teacher=wide)
    with pytest.raises(UsageError, match="teacher weight"):
        TrainConfig(teacher_weight=-1)


def test_the_teacher_reads_the_central_window(tmp_path):
    from stackview.inference.teacher import load_teacher

    path, _ = _save_teacher(tmp_path)
    tutor = load_teacher(path, _student_spec(), sampling_A=0.25)
    images = np.arange(2 * 64 * 64, dtype=np.float32).reshape(2, 64, 64)
    crop = tutor.crop(images)
    assert crop.shape == (2, WINDOW, WINDOW) and crop[0, 0, 0] == images[0, 16, 16]
    with pytest.raises(UsageError, match="0.25 Å/px, the training data are at 0.16"):
        load_teacher(path, _student_spec(), sampling_A=0.16)
    # a teacher of a slightly other window reads its own window on the same centre
    (tmp_path / "c").mkdir()
    near, _ = _save_teacher(tmp_path / "c", window=36)
    assert load_teacher(near, _student_spec()).crop(images).shape[-1] == 36


def test_frozen_parts_keep_their_weights_and_statistics():
    from stackview.inference.train import frozen_parts

    rng = np.random.default_rng(0)
    source = ArraySource(rng.random((16, 48, 48)).astype(np.float32), rng.random((16, 2)) * 3)
    spec = RegressorSpec(backbone="tiny", material="ReS2", head="invariant")
    start = build_regressor(spec, seed=0).state_dict()
    names = [n for n, _ in build_regressor(spec).backbone.named_children()]
    through = names[3]
    r = train(spec, source, TrainConfig(steps=6, batch_size=4, lr=1e-2, seed=0,
                                        freeze_through=through))
    after = r.model.state_dict()
    frozen = {f"backbone.{n}." for n in names[:4]}
    kept = [k for k in after if any(k.startswith(f) for f in frozen)]
    moved = [k for k in after if k not in kept and after[k].is_floating_point()
             and not torch.equal(after[k], start[k])]
    assert kept and all(torch.equal(after[k], start[k]) for k in kept)  # BN statistics too
    assert moved  # the rest trained
    with pytest.raises(UsageError, match="has no part 'layer9'; its parts are 0, 1"):
        frozen_parts(build_regressor(spec), "layer9")


def test_resuming_with_other_frozen_parts_is_one_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    source = ArraySource(rng.random((8, 48, 48)).astype(np.float32), rng.random((8, 2)) * 3)
    spec = RegressorSpec(backbone="tiny", material="ReS2", head="invariant")
    train(spec, source, TrainConfig(steps=4, batch_size=4, checkpoint_every=2,
                                    freeze_through="1"), out_dir=tmp_path / "ck")
    with pytest.raises(UsageError, match="freeze_through = '1', not ''"):
        train(spec, source, TrainConfig(steps=4, batch_size=4, checkpoint_every=2),
              out_dir=tmp_path / "ck", resume=True)

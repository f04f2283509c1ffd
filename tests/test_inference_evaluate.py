"""Evaluation metrics on known predictions; evaluate/train CLI end to end on a tiny model."""

import json

import numpy as np
import pytest
import torch

from stackview.cli import main
from stackview.core.labels import SlipLabels, TwistLabels
from stackview.datasets import DatasetSpec, generate_dataset
from stackview.errors import UsageError
from stackview.inference.evaluate import slip_metrics, twist_metrics, write_report
from stackview.models import read_card


def test_slip_metrics_on_known_errors():
    s = SlipLabels("ReS2")
    a, b = s.lengths_A
    true = np.array([[1.0, 1.0], [2.0, 0.5], [3.0, 1.5], [0.1, 0.2]])
    # errors of 0.05 Å along â, 0.15 Å along â (reported one lattice vector away), zero (the
    # layer-swapped equivalent -D) and an arbitrary one
    pred = np.array([[1.05, 1.0], [2.15 + a, 0.5], [-3.0, -1.5], [-0.4, -0.2 + b]])
    m = slip_metrics(pred, true, s)
    expected = s.distance(pred, true)
    np.testing.assert_allclose(expected[:3], [0.05, 0.15, 0.0], atol=1e-9)
    assert m["n"] == 4
    assert m["mean_A"] == pytest.approx(expected.mean())
    assert m["median_A"] == pytest.approx(np.median(expected))
    assert m["p95_A"] == pytest.approx(np.percentile(expected, 95))
    # errors along â only for the first three samples: Db errors are zero there
    per = m["per_axis"]
    assert set(per) == {"Da", "Db"}
    first_three = slip_metrics(pred[:3], true[:3], s)
    assert first_three["per_axis"]["Da"]["mean_abs_A"] == pytest.approx(0.2 / 3, abs=1e-9)
    assert first_three["per_axis"]["Db"]["mean_abs_A"] == pytest.approx(0.0, abs=1e-9)
    assert first_three["per_axis"]["Da"]["bias_A"] == pytest.approx(0.2 / 3, abs=1e-9)
    assert first_three["per_axis_cartesian"]["y"]["mean_abs_A"] == pytest.approx(0.0, abs=1e-9)
    assert first_three["fraction_below_0.1_A"] == pytest.approx(2 / 3)
    assert first_three["fraction_below_0.2_A"] == pytest.approx(1.0)


def test_twist_metrics_and_confusion_rate():
    t = TwistLabels("MoS2")
    true = np.array([10.0, 20.0, 45.0, 29.9, 5.0])
    # 10 → 50 (its mirror partner 60 − θ): a confusion; 20 → 20.2; 45 → -45+120 = 75 ≡ 45;
    # 29.9 → 30.1 is within the indistinguishable band; 5 → 4.5
    pred = np.array([50.0, 20.2, 75.0, 30.1, 4.5])
    m = twist_metrics(pred, true, t)
    err = t.distance(pred, true)
    np.testing.assert_allclose(err, [40.0, 0.2, 0.0, 0.2, 0.5], atol=1e-9)
    assert m["mean_deg"] == pytest.approx(err.mean())
    assert m["confusions"] == 1 and m["confusion_candidates"] == 4
    assert m["confusion_rate"] == pytest.approx(0.25)
    assert m["fraction_below_0.3_deg"] == pytest.approx(3 / 5)


def test_report_files(tmp_path):
    s = SlipLabels("ReS2")
    rng = np.random.default_rng(0)
    true = s.canonical(rng.uniform(0, 6, (30, 2)))
    pred = true + rng.normal(0, 0.05, true.shape)
    res = {"metrics": slip_metrics(pred, true, s), "predicted": pred, "true": true}
    path = write_report(res, tmp_path / "rep", s, title="test")
    assert json.loads(path.read_text())["n"] == 30
    csv = np.loadtxt(tmp_path / "rep" / "predictions.csv", delimiter=",", skiprows=1)
    assert csv.shape == (30, 5)
    np.testing.assert_allclose(csv[:, 4], s.distance(pred, true), rtol=1e-5, atol=1e-6)
    assert (tmp_path / "rep" / "errors.png").stat().st_size > 1000


def test_train_and_evaluate_cli(tmp_path, capsys):
    tiny = dict(patch_px=32, sampling_A=0.25, chunk=16, defocus_A=(40.0,), source_size_A=(0.65,))
    train_ds = generate_dataset(DatasetSpec(count=32, seed=1, **tiny), tmp_path / "tr.zarr",
                                scheduler="sync")
    test_ds = generate_dataset(DatasetSpec(count=16, seed=2, **tiny), tmp_path / "te.zarr",
                               scheduler="sync")
    out = tmp_path / "models" / "tiny"
    assert main(["train", "--dataset", str(train_ds), "--out", str(out), "--backbone", "tiny",
                 "--steps", "6", "--batch-size", "8", "--checkpoint-every", "3", "--threads", "1",
                 "--eval-dataset", str(test_ds), "--precision", "fp32"]) == 0
    card = read_card(out)
    assert card.sampling_A == 0.25 and card.patch_px == 32 and card.backbone == "tiny"
    assert card.training["command"].startswith("stackview") or card.training["command"]
    assert card.training["dataset_spec"]["seed"] == 1
    assert card.accuracy["te"]["n"] == 16
    capsys.readouterr()
    assert main(["evaluate", str(out), "--dataset", str(test_ds), "--out",
                 str(tmp_path / "rep"), "--update-card", "te-again"]) == 0
    assert "ΔD mean" in capsys.readouterr().out
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["mean_A"] == pytest.approx(card.accuracy["te"]["mean_A"], rel=1e-6)
    assert read_card(out).accuracy["te-again"]["n"] == 16
    if not torch.cuda.is_available():  # asking for a GPU that is not there: one sentence, exit 2
        capsys.readouterr()
        assert main(["evaluate", str(out), "--dataset", str(test_ds), "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    # a twist dataset does not fit a slip model
    tw = generate_dataset(DatasetSpec(task="twist", material="MoS2", count=4, positions=4,
                                      **tiny), tmp_path / "tw.zarr", scheduler="sync")
    assert main(["evaluate", str(out), "--dataset", str(tw)]) == 2
    # fine-tuning starts from the bundle's weights and says so in its card
    from stackview.inference.regressor import RegressorSpec
    from stackview.inference.train import initial_weights
    from stackview.models.bundle import load_bundle

    spec = RegressorSpec.from_dict(card.spec)
    start = initial_weights(str(out), spec)
    ref = load_bundle(out).model.state_dict()
    assert all(torch.equal(start[k], ref[k].float()) for k in ref)
    tuned = tmp_path / "models" / "tuned"
    assert main(["train", "--dataset", str(train_ds), "--out", str(tuned), "--backbone", "tiny",
                 "--steps", "2", "--batch-size", "8", "--threads", "1", "--precision", "fp32",
                 "--init-from", str(out)]) == 0
    start = read_card(tuned).training["init_from"]
    assert start["bundle"] == "tiny" and start["material"] == "ReS2"
    assert start["accuracy"]["te"]["mean_A"] == pytest.approx(card.accuracy["te"]["mean_A"])
    with pytest.raises(UsageError, match="cannot start"):
        initial_weights(str(out), RegressorSpec(backbone="tiny", material="MoS2", task="twist"))
    # transfer to a related material: the same network, the new material's label scaling
    rese2 = RegressorSpec(backbone="tiny", material="ReSe2", task="slip", head=spec.head)
    moved = initial_weights(str(out), rese2)
    assert all(torch.equal(moved[k], ref[k].float()) for k in ref if not k.startswith("label_"))
    np.testing.assert_allclose(moved["label_scale"].numpy(), rese2.label_scale, rtol=1e-6)
    assert not np.allclose(rese2.label_scale, spec.label_scale)
    # a trilayer model starts from the bilayer model's backbone; its head starts afresh
    tri = RegressorSpec(backbone="tiny", material="ReS2", layers=3, head="invariant")
    part = initial_weights(str(out), tri)
    assert part and all(k.startswith("backbone.") for k in part)
    assert all(torch.equal(part[k], ref[k].float()) for k in part)
    from stackview.datasets.store import ArraySource
    from stackview.inference.train import TrainConfig, train

    rng = np.random.default_rng(0)
    res = train(tri, ArraySource(rng.normal(size=(8, 32, 32)).astype(np.float32),
                                 rng.uniform(0, 5, (8, 4))),
                TrainConfig(steps=1, batch_size=4, lr=1e-9, warmup_steps=0, checkpoint_every=0,
                            threads=1, precision="fp32", channels_last=False),
                init_from=str(out))
    got = res.model.state_dict()
    assert all(torch.allclose(got[k].float(), part[k], atol=1e-6) for k in part
               if "running" not in k and "num_batches" not in k)
    # clean and physics-noise patches mixed in one run; each test set's accuracy in the card
    clean_ds = generate_dataset(DatasetSpec(count=16, seed=3, style="physics", **tiny),
                                tmp_path / "clean.zarr", scheduler="sync")
    mixed = tmp_path / "models" / "mixed"
    assert main(["train", "--dataset", str(train_ds), str(clean_ds), "--out", str(mixed),
                 "--backbone", "tiny", "--steps", "2", "--batch-size", "8", "--threads", "1",
                 "--precision", "fp32", "--eval-dataset", str(test_ds), str(clean_ds)]) == 0
    mc = read_card(mixed)
    assert mc.style == "clean + physics"
    assert mc.training["data"]["n"] == 48 and len(mc.training["data"]["parts"]) == 2
    assert mc.training["data"]["optics"] == card.training["data"]["optics"]
    assert set(mc.accuracy) == {"te", "clean"}
    capsys.readouterr()
    assert main(["train", "--dataset", str(train_ds), str(tw), "--out", str(tmp_path / "no"),
                 "--backbone", "tiny", "--steps", "1", "--batch-size", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "annot mix tw.zarr with tr.zarr: its task is 'twist', not 'slip'" in err
    assert len(err.splitlines()) == 1
    # the defects study on its fresh test sets (two tiny points)
    assert main(["study", "defects", str(out), "--out", str(tmp_path / "st"), "--n", "8",
                 "--ratios", "0", "0.1", "--scheduler", "sync"]) == 0
    summary = json.loads((tmp_path / "st" / "study_vacancy_ratio.json").read_text())
    assert [r["vacancy_ratio"] for r in summary["results"]] == [0.0, 0.1]
    assert (tmp_path / "st" / "study_vacancy_ratio.png").is_file()


def test_twist_metrics_by_angle_and_away_from_alignment():
    from stackview.core.labels import TwistLabels
    from stackview.inference.evaluate import twist_metrics

    space = TwistLabels("MoS2")
    true = np.array([1.0, 30.0, 40.0, 58.0])
    pred = np.array([2.0, 30.1, 20.0, 57.5])  # 40° read as its partner 20°
    m = twist_metrics(pred, true, space)
    assert m["mean_deg_3deg_from_ends"] == pytest.approx((0.1 + 20.0) / 2)
    assert m["confusions_5deg_from_ends"] == 1
    first = m["by_angle"][0]
    assert (first["from_deg"], first["to_deg"], first["n"]) == (0.0, 3.0, 1)
    assert first["mean_deg"] == pytest.approx(1.0)
    assert sum(b["n"] for b in m["by_angle"]) == 4
    assert m["by_angle"][-1]["n"] == 1 and m["by_angle"][-1]["mean_deg"] == pytest.approx(0.5)

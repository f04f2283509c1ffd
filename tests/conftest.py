"""Shared fixtures. Qt runs offscreen; the user data directory is a temporary folder."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _user_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STACKVIEW_DATA_DIR", str(tmp_path_factory.mktemp("userdata")))


@pytest.fixture
def shared_dir() -> Path:
    """../shared next to the repository; tests that need it skip cleanly without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """An untrained ReS2 slip bundle with the test backbone (fast analysis tests)."""
    from stackview.inference.regressor import RegressorSpec, build_regressor
    from stackview.models.bundle import save_bundle
    from stackview.models.card import ModelCard

    spec = RegressorSpec(backbone="tiny", material="ReS2")
    model = build_regressor(spec, seed=0)
    stem = tmp_path_factory.mktemp("models") / "ReS2_tiny"
    card = ModelCard(name="ReS2_tiny", spec=spec.to_dict(), sampling_A=0.25, patch_px=32,
                     orientation="aligned", style="clean")
    save_bundle(stem, model, card)
    return stem

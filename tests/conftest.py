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

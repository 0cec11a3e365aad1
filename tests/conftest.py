"""Shared test set-up: where the real Lean data lives, and the `lean` marker's skip."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FAKES = ROOT / "tests" / "fakes"
# The research data beside the checkout (absent in a user's clone).
SHARED_DATA = Path(os.environ.get("SEGPILOT_SHARED_DATA", ROOT.parent / "shared" / "data"))
PYTHON = sys.executable


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared research data is not beside this checkout ({SHARED_DATA})")
    return SHARED_DATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("lake"):
        return
    skip = pytest.mark.skip(reason="needs a real Lean toolchain: `lake` is not on PATH")
    for item in items:
        if "lean" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test touches the user's real segpilot state."""
    monkeypatch.setenv("SEGPILOT_HOME", str(tmp_path_factory.mktemp("segpilot-home")))

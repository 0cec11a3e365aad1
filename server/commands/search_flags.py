"""The flags `segpilot prove` and `segpilot bench` share: the search budget, the model, and
who runs the jobs. Each flag's help is its setting's; unset flags leave the config file and
environment in charge."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from segpilot import config
from segpilot.commands.common import add_lean_flags
from segpilot.engine.executors import EXECUTORS, make_executor
from segpilot.model.settings import setting_help
from segpilot.search.budget import SearchBudget
from segpilot.search.rollout import TRIGGERS

# The paper's budget (arXiv 2605.11905, as DESIGN.md gives it): per theorem.
BUDGET_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "search": {"wall_s": 1800.0, "expansions": 600, "k": 4},
        "model": {"temperature": 1.1},
    },
}

# Search setting -> (flag, type, metavar).
_SEARCH_FLAGS = {
    "wall_s": ("--budget-s", float, "SECONDS"),
    "expansions": ("--expansions", int, "N"),
    "lean_calls": ("--lean-calls", int, "N"),
    "k": ("-k", int, "N"),
    "rollout_depth": ("--rollout-depth", int, "H"),
}


def _search_help(name: str) -> str:
    found = next(f for f in dataclasses.fields(SearchBudget) if f.name == name)
    return f"{found.metadata['help']} (default: {config.default_of(found)})"


def add_search_flags(parser: argparse.ArgumentParser, *, presets: bool = True) -> None:
    """Budget, rollout, model and Lean flags."""
    group = parser.add_argument_group("search budget (per theorem)")
    group.add_argument(
        "--budget-preset",
        choices=sorted(BUDGET_PRESETS),
        help="paper: 1800 s, 600 expansions, 4 samples, temperature 1.1 (flags still win)",
    )
    for name, (flag, kind, metavar) in _SEARCH_FLAGS.items():
        group.add_argument(
            flag,
            dest=f"search_{name}",
            type=kind,
            metavar=metavar,
            help=_search_help(name),
        )
    group.add_argument(
        "--rollout",
        dest="search_rollout",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="goal-aware rollout: follow the best block when the goal count moves (default on)",
    )
    group.add_argument(
        "--trigger",
        dest="search_trigger",
        choices=TRIGGERS,
        help=_search_help("trigger"),
    )
    model = parser.add_argument_group("model")
    if presets:
        model.add_argument("--preset", help=setting_help("preset"))
    model.add_argument(
        "--model", dest="model_path", metavar="GGUF", help=setting_help("model_path")
    )
    model.add_argument(
        "--adapter", dest="adapter_path", metavar="GGUF", help=setting_help("adapter_path")
    )
    model.add_argument("--temperature", type=float, metavar="T", help=setting_help("temperature"))
    model.add_argument("--seed", type=int, metavar="N", help=setting_help("seed"))
    add_lean_flags(parser)


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("who runs the searches")
    group.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: this process (default); processes: --workers worker processes, each "
        "with its own model and REPL; ray: Ray actors (pip install 'segpilot[cluster]')",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="workers for --executor processes or ray (default: the CPU count)",
    )
    group.add_argument(
        "--address",
        metavar="ADDR",
        help="an existing Ray cluster (HOST:PORT or auto); default: start Ray here on loopback",
    )
    group.add_argument(
        "--worker-memory-mb",
        type=float,
        default=4096.0,
        metavar="MB",
        help="stop a worker process over this resident memory (its model and Python; its "
        "REPL has the [lean] memory limit) and run its job again once (default: 4096)",
    )


def overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, search) setting overrides from the flags: the budget preset, then flags."""
    chosen = BUDGET_PRESETS.get(getattr(args, "budget_preset", None) or "", {})
    model = dict(chosen.get("model", {}))
    search = dict(chosen.get("search", {}))
    for name in ("preset", "model_path", "adapter_path", "temperature", "seed"):
        if getattr(args, name, None) is not None:
            model[name] = getattr(args, name)
    for name in (*_SEARCH_FLAGS, "rollout", "trigger"):
        value = getattr(args, f"search_{name}", None)
        if value is not None:
            search[name] = value
    return model, search


def executor_from(args: argparse.Namespace) -> Any:
    return make_executor(args.executor, args.workers, args.address, memory_mb=args.worker_memory_mb)

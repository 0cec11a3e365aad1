"""`segpilot config`: every effective setting and where its value came from."""

from __future__ import annotations

import argparse
import json

from segpilot import paths

DESCRIPTION = """\
Print every effective setting as `table.key = value`, with where it came from: `default`,
`file` (the config file), `env SEGPILOT_<TABLE>_<KEY>`. Precedence, lowest first: defaults <
config file < environment < command-line flags or editor settings."""

EPILOG = """\
examples:
  segpilot config                          every setting, its value and its source
  SEGPILOT_MODEL_K=8 segpilot config       see an environment variable take effect
  segpilot config --json                   for scripts"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config",
        help="print every effective setting and where it came from",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")
    parser.set_defaults(func=run)


def _shown(value: object) -> object:
    if isinstance(value, (str, int, float, bool, list, tuple)) or value is None:
        return list(value) if isinstance(value, tuple) else value
    return dict(value) if hasattr(value, "items") else str(value)  # type: ignore[call-overload]


def run(args: argparse.Namespace) -> int:
    from segpilot.engine.settings import load_settings

    settings = load_settings()
    rows = settings.rows()
    if args.json:
        out = {
            "configFile": str(paths.config_file()),
            "settings": {k: {"value": _shown(v), "source": s} for k, v, s in rows},
        }
        print(json.dumps(out, ensure_ascii=False, default=str))
        return 0
    print(f"# config file: {paths.config_file()}")
    width = max(len(k) for k, _v, _s in rows)
    for key, value, source in rows:
        shown = json.dumps(_shown(value), ensure_ascii=False, default=str)
        print(f"{key:<{width}} = {shown}  # {source}")
    return 0

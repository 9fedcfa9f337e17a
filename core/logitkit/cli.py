"""The ``logitkit`` command line. Each command lives in its own module under ``logitkit.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from logitkit import __version__
from logitkit.errors import ConfigError
from logitkit.plugins import PluginLoadError

#: Command modules, in ``--help`` order. Each has HELP, add_arguments(parser) and run(args) -> int.
COMMANDS = ("list", "plugins", "validate", "explain", "schema", "generate", "bench", "plot", "detect", "convert", "new-plugin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logitkit",
        description="A plugin-based registry of logits processors for LLM generation.",
    )
    parser.add_argument("--version", action="version", version=f"logitkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"logitkit.commands.{name.replace('-', '_')}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.line(), file=sys.stderr)
        return 2
    except PluginLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())

"""``logitkit validate``: check config files without running anything."""

from __future__ import annotations

import argparse
import sys

from logitkit.config import resolve
from logitkit.errors import ConfigError

HELP = "Validate config files: exit 0 when all are valid, 2 when any is invalid (one line per problem)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML, JSON or TOML config files")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only problems")


def run(args: argparse.Namespace) -> int:
    invalid = 0
    for path in args.files:
        try:
            resolved = resolve(path)
        except ConfigError as exc:
            invalid += 1
            for problem in exc.problems:
                print(problem.line(), file=sys.stderr)
            continue
        if not args.quiet:
            names = ", ".join(spec.name for spec in resolved.processors) or "no processors"
            print(f"{path}: ok ({names})")
    return 2 if invalid else 0

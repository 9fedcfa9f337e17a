"""``logitkit validate``: check config files without running anything."""

from __future__ import annotations

import argparse
import sys

from logitkit.config import resolve
from logitkit.errors import ConfigError
from logitkit.formats.sniff import other_format_hint
from logitkit.loading import read_config_file

HELP = "Validate config files: exit 0 when all are valid, 2 when any is invalid (one line per problem)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML, JSON or TOML config files")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only problems")


def problem_lines(path: str) -> list[str]:
    """The lines to print for an invalid file: one per problem, or one naming the format it is in."""
    try:
        resolve(path)
    except ConfigError as exc:
        if any("unknown section" in p.reason for p in exc.problems):
            hint = other_format_hint(read_config_file(path), path)  # it parsed: sections were read
            if hint is not None:
                return [f"{path}: {hint}"]
        return [p.line() for p in exc.problems]
    return []


def run(args: argparse.Namespace) -> int:
    invalid = 0
    for path in args.files:
        lines = problem_lines(path)
        if lines:
            invalid += 1
            print("\n".join(lines), file=sys.stderr)
        elif not args.quiet:
            resolved = resolve(path)
            names = ", ".join(spec.name for spec in resolved.processors) or "no processors"
            print(f"{path}: ok ({names})")
    return 2 if invalid else 0

"""``logitkit schema``: the JSON Schema for config files."""

from __future__ import annotations

import argparse

from logitkit.commands._output import print_json
from logitkit.registry import registry
from logitkit.schema import build_json_schema

HELP = "Print the JSON Schema of config files, for editor completion and validation."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    schema = build_json_schema(registry())
    if args.output:
        import json
        from pathlib import Path

        Path(args.output).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        return 0
    print_json(schema)
    return 0

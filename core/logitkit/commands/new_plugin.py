"""``logitkit new-plugin``: write a ready plugin package."""

from __future__ import annotations

import argparse
from pathlib import Path

from logitkit.scaffold import names_for, write_plugin

HELP = "Write a ready plugin package (pyproject with the entry point, an example processor, its tests, a README)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", metavar="NAME", help="plugin name, e.g. 'demo' (package logitkit-demo)"
    )
    parser.add_argument(
        "--directory", "-d", default=".", metavar="DIR", help="where to create the package folder"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite files in an existing folder"
    )


def run(args: argparse.Namespace) -> int:
    root = write_plugin(args.name, Path(args.directory), force=args.force)
    names = names_for(args.name)
    print(f"wrote {root}")
    print(
        f"next: pip install -e '{root}[test]' && pytest {root}   (processor {names['processor']!r})"
    )
    return 0

"""``logitkit explain``: the resolved pipeline, in run order."""

from __future__ import annotations

import argparse

from logitkit.commands._output import console, table
from logitkit.pipeline import Pipeline

HELP = "Show the resolved pipeline for a config: each processor in run order with its stage and parameters."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="YAML, JSON or TOML config file")


def _params(config: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def run(args: argparse.Namespace) -> int:
    pipe = Pipeline.from_config(args.file)
    rows = [(i + 1, row["name"], row["stage"], row["priority"], _params(row["config"])) for i, row in enumerate(pipe.describe())]
    table(f"{args.file} (order: {pipe.order})", ("#", "name", "stage", "priority", "parameters"), rows)
    if pipe.selector is not None and pipe.selector.name in ("sample", "greedy"):
        console.print(f"selector: {pipe.selector.name}")
    return 0

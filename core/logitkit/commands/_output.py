"""Shared output helpers for commands: rich tables on a terminal, plain text in pipes."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Wide enough in pipes and CI logs, where rich would otherwise assume 80 columns.
# markup=False: names, paths and parameter values print as written, never as rich markup.
console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 160)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(title=None if title is None else Text(title), show_lines=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        # Text, not markup: a value such as the regex 'def [a-z_]{1,12}' must print as written.
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console.print(grid)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")

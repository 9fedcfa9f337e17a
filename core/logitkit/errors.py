"""The one exception type for bad configs, carrying every problem found."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where it is and why it is wrong."""

    source: str
    path: str
    reason: str

    def line(self) -> str:
        where = f"{self.source}: " if self.source else ""
        at = f"{self.path}: " if self.path else ""
        return f"{where}{at}{self.reason}"


class ConfigError(ValueError):
    """A config is invalid. ``problems`` lists every problem, one per field."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__("\n".join(p.line() for p in self.problems) or "invalid config")

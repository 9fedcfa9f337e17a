"""The one exception type for bad configs, carrying every problem found."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Echoed values are cut to this many characters, so one bad list cannot make a huge error line.
MAX_ECHO = 80
#: No problem line is longer than this, whatever a plugin puts in its reason.
MAX_LINE = 1000


def short_repr(value: object) -> str:
    """``repr(value)``, cut to ``MAX_ECHO`` characters with the full length said."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else f"{text[: MAX_ECHO - 3]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where it is and why it is wrong."""

    source: str
    path: str
    reason: str

    def line(self) -> str:
        where = f"{self.source}: " if self.source else ""
        at = f"{self.path}: " if self.path else ""
        line = f"{where}{at}{self.reason}"
        return line if len(line) <= MAX_LINE else f"{line[: MAX_LINE - 3]}..."


class ConfigError(ValueError):
    """A config is invalid. ``problems`` lists every problem, one per field."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        super().__init__("\n".join(p.line() for p in self.problems) or "invalid config")

"""The result a watermark detector returns, whatever its scheme.

A processor class that can tell whether a sequence carries its watermark
exposes a classmethod ``detect(config, tokens, ids, *, z_threshold)``
returning one ``Detection`` per row of ``ids``; ``logitkit detect`` finds it
through the registry, so the core never names a watermarking scheme.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: Detectors' default: about 3e-5 one-sided false-positive rate under the null hypothesis.
DEFAULT_Z_THRESHOLD = 4.0


@dataclass(frozen=True)
class Detection:
    """One sequence's watermark test: a statistic, its z-score against unwatermarked text, and a verdict."""

    #: The scheme that was tested, e.g. ``"greenlist"``.
    scheme: str
    #: How many tokens (or n-grams) entered the statistic.
    scored: int
    #: The statistic: green fraction, mean g-value, ...
    score: float
    #: The statistic's expected value for text without the watermark.
    expected: float
    z_score: float
    #: One-sided p-value of ``z_score`` under the standard normal.
    p_value: float
    watermarked: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def p_value(z_score: float) -> float:
    """One-sided upper tail of the standard normal."""
    if math.isnan(z_score):
        return float("nan")
    return 0.5 * math.erfc(z_score / math.sqrt(2.0))

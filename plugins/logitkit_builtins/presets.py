"""Config presets: named starting points, usable as ``preset: NAME`` or ``--preset NAME``.

Fields written next to ``preset:`` in a config override the preset's own.
The temperatures come from two tables in the source document: one by task
(code, extraction, chat, translation, creative writing), one by the shape of
the distribution (sharp, balanced, model default, flat).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: name -> (processors, description)
PRESETS: dict[str, tuple[list[Any], str]] = {
    # By task.
    "code": (
        [{"temperature": 0.0}],
        "code and maths: temperature 0 (always the most likely token)",
    ),
    "math": ([{"temperature": 0.0}], "maths problems: temperature 0, like code"),
    "extraction": (
        [{"temperature": 1.0}],
        "data extraction and analysis: the model's own distribution (T 1.0)",
    ),
    "chat": ([{"temperature": 1.3}], "general conversation: temperature 1.3"),
    "translation": ([{"temperature": 1.3}], "translation: temperature 1.3"),
    "creative": ([{"temperature": 1.5}], "creative writing and poetry: temperature 1.5"),
    # By the shape of the distribution.
    "sharp": (
        [{"temperature": 0.1}],
        "a sharp peak, little variety (factual answers, code completion): T 0.1",
    ),
    "balanced": ([{"temperature": 0.5}], "between determinism and variety: T 0.5"),
    "neutral": ([{"temperature": 1.0}], "the model's unchanged distribution: T 1.0"),
    "flat": ([{"temperature": 2.0}], "a flat distribution, much variety (stories): T 2.0"),
    # The combined walk-through.
    "combined": (
        [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.01}],
        "temperature 0.8, then top_k 50, top_p 0.9 and min_p 0.01",
    ),
}


def register_config_presets(register: Callable[..., None]) -> None:
    for name, (processors, description) in PRESETS.items():
        register(name, {"processors": processors}, description)

"""The stages a processor can declare, in the order a pipeline runs them."""

from __future__ import annotations

from enum import IntEnum


class Stage(IntEnum):
    """Where a processor runs in a chain.

    The values leave gaps of 100 so a plugin can place a processor between two
    built-in stages by declaring a plain integer (for example ``250``).
    The default order reproduces transformers' ``_get_logits_processor``.
    """

    GUIDANCE = 100
    LOGITS = 200
    # Output constraints (JSON schema, regex, grammar, choice) run after the logits stage and
    # before temperature, so truncation and selection only ever choose among allowed tokens.
    # 280, not 250: plugins (logitkit-softcap) already sit at 250, after the logits stage.
    CONSTRAINT = 280
    TEMPERATURE = 300
    TRUNCATION = 400
    WATERMARK = 500
    RENORMALIZE = 600
    SELECTION = 700


def stage_label(value: int) -> str:
    """A readable name for a stage value, including plugin values between stages."""
    try:
        return Stage(value).name.lower()
    except ValueError:
        below = [s for s in Stage if s.value < value]
        above = [s for s in Stage if s.value > value]
        low = below[-1].name.lower() if below else "start"
        high = above[0].name.lower() if above else "end"
        return f"{value} ({low}<{high})"


def coerce_stage(value: object) -> int:
    """Accept a ``Stage`` member, its name, or an integer in the stage range."""
    if isinstance(value, Stage):
        return int(value)
    if isinstance(value, str):
        try:
            return int(Stage[value.upper()])
        except KeyError:
            raise ValueError(f"unknown stage {value!r}; known: {', '.join(s.name.lower() for s in Stage)}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 < value < 1000:
            return value
        raise ValueError(f"stage {value} is outside 1..999")
    raise ValueError(f"stage must be a Stage, a stage name or an int, not {type(value).__name__}")

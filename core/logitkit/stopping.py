"""The stopping-criterion contract for ``logitkit.generate``.

A criterion is built once per generation from the settings (``from_settings``
returns ``None`` when the settings do not ask for it) and then checked after
every step. ``check`` sees the sequences the search is about to keep (for beam
search: every candidate continuation), so it must not keep per-row state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from logitkit.settings import GenerationSettings

log = logging.getLogger("logitkit.stopping")

#: Finish reasons, in the order codes are assigned (0 means still running).
#: ``constraint``: the row ended with eos where a processor reported it complete (``Processor.complete_rows``).
FINISH_REASONS: tuple[str, ...] = ("running", "eos", "stop_string", "length", "time", "constraint")


def reason_code(reason: str) -> int:
    """The small integer the decoding loops store per row for ``reason``."""
    try:
        return FINISH_REASONS.index(reason)
    except ValueError:
        raise ValueError(
            f"unknown finish reason {reason!r}; known: {', '.join(FINISH_REASONS[1:])}"
        ) from None


@dataclass(frozen=True)
class StopContext:
    """What a criterion may read when it is built for one generation."""

    settings: GenerationSettings
    #: End-of-sequence ids (may be empty).
    eos: tuple[int, ...]
    #: Length of the (decoder) prompt in tokens, padding included.
    prompt_length: int
    #: The total (decoder) length no sequence may exceed.
    max_length: int
    tokenizer: Any = None
    #: ``time.monotonic()`` when generation began.
    start_time: float = 0.0


class StoppingCriterion:
    """Says which rows are finished after a step.

    Subclasses set ``name`` (registry key) and ``reason`` (one of
    ``FINISH_REASONS``), and implement ``from_settings`` and ``check``.
    """

    name: ClassVar[str]
    reason: ClassVar[str] = "length"
    #: Lower runs first; when several criteria fire on the same step, the first one names the reason.
    priority: ClassVar[int] = 0

    @classmethod
    def from_settings(cls, context: StopContext) -> StoppingCriterion | None:
        """An instance for this generation, or ``None`` when the settings do not ask for this criterion."""
        raise NotImplementedError

    def check(self, sequences: torch.Tensor, step: int) -> torch.Tensor | None:
        """Rows of ``sequences`` ([rows, length]; the last column is the newest token) that must stop.

        ``step`` is the number of generated tokens, the newest included. Return
        a bool tensor ``[rows]``, or ``None`` when no row stops (cheaper: no
        tensor and no device sync).
        """
        raise NotImplementedError


def checked_stop(
    criterion: StoppingCriterion, sequences: torch.Tensor, step: int, running: list[StoppingCriterion]
) -> torch.Tensor | None:
    """``criterion.check``; one that raises or answers in the wrong form is dropped from ``running``.

    A plugin's criterion must not end every generation: it is named in a warning
    and skipped for the rest of this one, and the other criteria keep working.
    """
    try:
        hit = criterion.check(sequences, step)
        if hit is not None and (not isinstance(hit, torch.Tensor) or hit.shape != (sequences.shape[0],)):
            raise TypeError(f"check returned {hit!r}, not a bool tensor of shape ({sequences.shape[0]},)")
        return None if hit is None else hit.bool()
    except Exception as exc:
        log.warning(
            "logitkit: stopping criterion %r (from %s) failed and is skipped for this generation: %s: %s",
            getattr(criterion, "name", type(criterion).__name__), type(criterion).__module__, type(exc).__name__, exc,
        )  # fmt: skip
        if criterion in running:
            running.remove(criterion)
        return None
